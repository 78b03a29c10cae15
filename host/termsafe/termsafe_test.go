package termsafe

import (
	"strings"
	"testing"
)

func TestWriter(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain text", "Running hooks from /build/hooks/root.d\n", "Running hooks from /build/hooks/root.d\n"},
		{"tabs and UTF-8", "a\tb → ü 日本\n", "a\tb → ü 日本\n"},
		{"colour", "\x1b[31mred\x1b[0m\n", "^[[31mred^[[0m\n"},
		{"window title", "\x1b]0;owned\x07\n", "^[]0;owned^G\n"},
		{"clear screen and home", "\x1b[2J\x1b[H", "^[[2J^[[H"},
		{"answerback request", "\x1b[c\x05", "^[[c^E"},
		{"8-bit CSI as UTF-8", "\u009b31m", `\u009b31m`},
		{"8-bit CSI raw byte", "\x9b31m", "\uFFFD31m"},
		{"NUL and DEL", "a\x00b\x7f", "a^@b^?"},
		{"CRLF", "line\r\nnext\r\n", "line\nnext\n"},
		{"lone CR overwrites no line", "secret\rpublic\n", "secret\npublic\n"},
		{"backspace", "abc\b\b\bxyz", "abc^H^H^Hxyz"},
		{"invalid UTF-8", "\xff\xfe ok", "\uFFFD\uFFFD ok"},
		{"bidi override", "abc\u202etxt.exe\u2066x\u2069", `abc\u202etxt.exe\u2066x\u2069`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			w := NewWriter(&b)
			if n, err := w.Write([]byte(tc.in)); err != nil || n != len(tc.in) {
				t.Fatalf("Write = %d, %v", n, err)
			}
			w.Flush()
			if b.String() != tc.want {
				t.Errorf("got %q, want %q", b.String(), tc.want)
			}
		})
	}
}

// A sequence split across writes is neutralised all the same, and a rune
// split across writes arrives whole.
func TestWriterAcrossWrites(t *testing.T) {
	in := "ok \x1b[2J ü日\u009b\r\nend\r"
	for split := 0; split <= len(in); split++ {
		var b strings.Builder
		w := NewWriter(&b)
		w.Write([]byte(in[:split]))
		w.Write([]byte(in[split:]))
		w.Flush()
		if want := "ok ^[[2J ü日\\u009b\nend\n"; b.String() != want {
			t.Errorf("split at %d: got %q, want %q", split, b.String(), want)
		}
	}
	var b strings.Builder
	w := NewWriter(&b)
	w.Write([]byte("日"[:2]))
	w.Flush()
	if b.String() != "\uFFFD\uFFFD" {
		t.Errorf("an incomplete rune at the end gave %q", b.String())
	}
}

func TestString(t *testing.T) {
	if got, want := String("a\x1b[1A\nb\rc"), "a^[[1A^Jb^Mc"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Whatever comes in, what goes out holds no control character but
// newline and tab.
func FuzzWriter(f *testing.F) {
	f.Add([]byte("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"))
	f.Add([]byte("\xc2\x9b\xe2\x80"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var b strings.Builder
		w := NewWriter(&b)
		w.Write(in)
		w.Flush()
		for _, r := range b.String() {
			if (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r <= 0x9f) || bidiControl(r) {
				t.Fatalf("control character %U passed: %q -> %q", r, in, b.String())
			}
		}
	})
}
