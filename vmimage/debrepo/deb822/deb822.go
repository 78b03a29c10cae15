// Package deb822 reads Debian control files (deb822(5)), such as Release
// and Packages: paragraphs of "Name: value" fields with continuation lines.
package deb822

import (
	"bufio"
	"fmt"
	"io"
	"iter"
	"strings"
)

// MaxLine bounds a line: one of MaxLine bytes or more ends the read with
// bufio.ErrTooLong.
const MaxLine = 16 << 20

// A Field is one field of a control file: its first line, cut at the
// first colon, and the lines that continue it.
type Field struct {
	// Paragraph is the number of the field's paragraph, from 0. A run
	// of empty lines ends one; those before the first are none.
	Paragraph int
	// Text is the field's first line as written: Name, a colon, Value.
	// It is empty for continuation lines that continue no field (at the
	// start of a paragraph, or after a malformed line).
	Text  string
	Name  string // as written before the colon
	Value string // as written after it, blanks and all
	// Continuation holds the lines that continue the field, each as
	// written, with its leading space or tab.
	Continuation []string
}

// A SyntaxError is a line that is neither empty, nor a continuation, nor
// a field: it has no colon. Reading goes on after it.
type SyntaxError struct {
	Line int // from 1
	Text string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("malformed line %q", e.Text) }

// Fields reads r's fields in order, each once all its continuation lines
// are read. Lines end in LF or CRLF. A paragraph ends at an empty line;
// a line of blanks only is a continuation line, not an empty one, and a
// line that starts with # is no comment (deb822 allows comments in source
// package control files only). A malformed line is yielded as a
// *SyntaxError, after the field before it; reading goes on, and the
// lines that continue it form a field with no Text. An error reading r
// is yielded last.
func Fields(r io.Reader) iter.Seq2[Field, error] {
	return func(yield func(Field, error) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), MaxLine)
		var (
			cur       *Field // read, not yet yielded: lines may continue it
			paragraph int
			inside    bool // a line of this paragraph was read
			n         int
		)
		done := func() bool { // yields cur; false: stop reading
			f := cur
			cur = nil
			return f == nil || yield(*f, nil)
		}
		for sc.Scan() {
			n++
			line := sc.Text()
			switch {
			case line == "":
				if !done() {
					return
				}
				if inside {
					paragraph, inside = paragraph+1, false
				}
				continue
			case line[0] == ' ' || line[0] == '\t':
				if cur == nil {
					cur = &Field{Paragraph: paragraph}
				}
				cur.Continuation = append(cur.Continuation, line)
			default:
				if !done() {
					return
				}
				name, value, ok := strings.Cut(line, ":")
				if !ok {
					if !yield(Field{}, &SyntaxError{Line: n, Text: line}) {
						return
					}
					break
				}
				cur = &Field{Paragraph: paragraph, Text: line, Name: name, Value: value}
			}
			inside = true
		}
		if !done() {
			return
		}
		if err := sc.Err(); err != nil {
			yield(Field{}, err)
		}
	}
}
