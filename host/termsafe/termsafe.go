// Package termsafe passes text from an untrusted source to a terminal.
//
// What a build prints comes from the helper VM, where a hook is root: its
// bytes could carry escape sequences that move the cursor, rewrite lines
// already printed, retitle the window, or make some terminals answer back
// as if the user had typed. So text, tabs and newlines pass; a carriage
// return ends the line; every other control character (C0, DEL and the
// C1 range) is shown in caret or \u notation, which starts no sequence,
// and so are the bidirectional overrides, which reorder what is shown;
// bytes that are not UTF-8 become U+FFFD.
package termsafe

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Writer neutralises what it passes on to an underlying writer. It keeps
// at most a few bytes of an incomplete UTF-8 sequence between writes;
// Flush writes them.
type Writer struct {
	w       io.Writer
	pending []byte // the start of a rune split across writes
	cr      bool   // the last byte was a carriage return
	buf     []byte
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write neutralises p and writes the result. It reports len(p) unless
// the underlying writer fails.
func (t *Writer) Write(p []byte) (int, error) {
	data := p
	if len(t.pending) > 0 {
		data = append(t.pending, p...)
		t.pending = nil
	}
	out := t.buf[:0]
	for i := 0; i < len(data); {
		c := data[i]
		if t.cr {
			t.cr = false
			if c != '\n' {
				out = append(out, '\n') // a lone CR would overwrite the line
			}
		}
		switch {
		case c == '\r':
			t.cr = true
			i++
		case c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f):
			out = append(out, c)
			i++
		case c < 0x20 || c == 0x7f:
			out = append(out, '^', c^0x40)
			i++
		default:
			if !utf8.FullRune(data[i:]) {
				t.pending = append([]byte(nil), data[i:]...)
				i = len(data)
				continue
			}
			r, n := utf8.DecodeRune(data[i:])
			switch {
			case r == utf8.RuneError && n == 1:
				out = utf8.AppendRune(out, utf8.RuneError)
			case r >= 0x80 && r <= 0x9f, bidiControl(r):
				out = fmt.Appendf(out, `\u%04x`, r)
			default:
				out = append(out, data[i:i+n]...)
			}
			i += n
		}
	}
	t.buf = out
	if len(out) > 0 {
		if _, err := t.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// bidiControl reports the explicit bidirectional formatting characters,
// which make a terminal show text in another order than it is written
// (the "Trojan Source" trick).
func bidiControl(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

// Flush writes what an incomplete sequence left pending, as U+FFFD, and
// ends a line left by a carriage return.
func (t *Writer) Flush() error {
	var out []byte
	if t.cr {
		out = append(out, '\n')
		t.cr = false
	}
	for range t.pending {
		out = utf8.AppendRune(out, utf8.RuneError)
	}
	t.pending = nil
	if len(out) == 0 {
		return nil
	}
	_, err := t.w.Write(out)
	return err
}

// String neutralises s, as Writer does, for one line: a newline is shown
// as ^J too.
func String(s string) string {
	var b strings.Builder
	w := NewWriter(&b)
	w.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r", "^M"), "\n", "^J")))
	w.Flush()
	return b.String()
}
