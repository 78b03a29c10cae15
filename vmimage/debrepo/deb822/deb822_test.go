package deb822

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// trace is what Fields yields from text, one line an item.
func trace(text string) string {
	var b strings.Builder
	for f, err := range Fields(strings.NewReader(text)) {
		if err != nil {
			var syn *SyntaxError
			if errors.As(err, &syn) {
				fmt.Fprintf(&b, "line %d: ", syn.Line)
			}
			fmt.Fprintf(&b, "error: %v\n", err)
			continue
		}
		fmt.Fprintf(&b, "%d %q %q %q %q\n", f.Paragraph, f.Text, f.Name, f.Value, f.Continuation)
	}
	return b.String()
}

func TestFields(t *testing.T) {
	for _, tt := range []struct {
		name, text, want string
	}{
		{"empty", "", ""},
		{"blank lines only", "\n\n\n", ""},
		{"one field", "Suite: stable\n", `0 "Suite: stable" "Suite" " stable" []` + "\n"},
		{"no final newline", "Suite: stable", `0 "Suite: stable" "Suite" " stable" []` + "\n"},
		{"value as written", "A:b: c \t\n", `0 "A:b: c \t" "A" "b: c \t" []` + "\n"},
		{"empty value", "SHA256:\n", `0 "SHA256:" "SHA256" "" []` + "\n"},
		{"empty name", ": v\n", `0 ": v" "" " v" []` + "\n"},
		{
			"continuation lines",
			"SHA256:\n aa 1 main/Packages\n\tbb 2 main/Packages.xz\nDate: now\n",
			`0 "SHA256:" "SHA256" "" [" aa 1 main/Packages" "\tbb 2 main/Packages.xz"]` + "\n" +
				`0 "Date: now" "Date" " now" []` + "\n",
		},
		{
			"a line of blanks continues the field",
			"Description: x\n \n .\nA: b\n",
			`0 "Description: x" "Description" " x" [" " " ."]` + "\n" + `0 "A: b" "A" " b" []` + "\n",
		},
		{
			"a continuation that looks like a field",
			"Description: x\n Depends: y\n",
			`0 "Description: x" "Description" " x" [" Depends: y"]` + "\n",
		},
		{
			"paragraphs",
			"Package: a\nVersion: 1\n\nPackage: b\n",
			`0 "Package: a" "Package" " a" []` + "\n" + `0 "Version: 1" "Version" " 1" []` + "\n" +
				`1 "Package: b" "Package" " b" []` + "\n",
		},
		{
			"runs of blank lines, before, between and after",
			"\n\nPackage: a\n\n\n\nPackage: b\n\n\n",
			`0 "Package: a" "Package" " a" []` + "\n" + `1 "Package: b" "Package" " b" []` + "\n",
		},
		{
			"fields repeated, in order",
			"Depends: a\nDepends: b\nPre-Depends: c\nDepends: d\n",
			`0 "Depends: a" "Depends" " a" []` + "\n" + `0 "Depends: b" "Depends" " b" []` + "\n" +
				`0 "Pre-Depends: c" "Pre-Depends" " c" []` + "\n" + `0 "Depends: d" "Depends" " d" []` + "\n",
		},
		{
			"CRLF",
			"Package: a\r\nDescription: x\r\n y\r\n\r\nPackage: b\r\n",
			`0 "Package: a" "Package" " a" []` + "\n" + `0 "Description: x" "Description" " x" [" y"]` + "\n" +
				`1 "Package: b" "Package" " b" []` + "\n",
		},
		{
			"# starts no comment",
			"#Comment: not one\n# no colon\nA: b\n",
			`0 "#Comment: not one" "#Comment" " not one" []` + "\n" +
				`line 2: error: malformed line "# no colon"` + "\n" + `0 "A: b" "A" " b" []` + "\n",
		},
		{
			"a malformed line, after the field before it; reading goes on",
			"A: b\n c\nnot a field\n d\nE: f\n",
			`0 "A: b" "A" " b" [" c"]` + "\n" + `line 3: error: malformed line "not a field"` + "\n" +
				`0 "" "" "" [" d"]` + "\n" + `0 "E: f" "E" " f" []` + "\n",
		},
		{
			"continuation lines that continue no field",
			" a\nA: b\n\n c\n\td\nE: f\n",
			`0 "" "" "" [" a"]` + "\n" + `0 "A: b" "A" " b" []` + "\n" +
				`1 "" "" "" [" c" "\td"]` + "\n" + `1 "E: f" "E" " f" []` + "\n",
		},
	} {
		if got := trace(tt.text); got != tt.want {
			t.Errorf("%s: Fields(%q) yields\n%s\nwant\n%s", tt.name, tt.text, got, tt.want)
		}
	}
}

// TestFieldsLongLine: a line of MaxLine bytes ends the read with
// bufio.ErrTooLong, after the fields before it.
func TestFieldsLongLine(t *testing.T) {
	text := "A: b\nC: " + strings.Repeat("x", MaxLine) + "\nD: e\n"
	want := `0 "A: b" "A" " b" []` + "\n" + "error: " + bufio.ErrTooLong.Error() + "\n"
	if got := trace(text); got != want {
		t.Errorf("Fields yields\n%.200s\nwant\n%s", got, want)
	}
	text = "A: " + strings.Repeat("x", MaxLine-4) + "\n"
	for f, err := range Fields(strings.NewReader(text)) {
		if err != nil || len(f.Text) != MaxLine-1 {
			t.Errorf("a line of MaxLine-1 bytes: %d bytes, %v", len(f.Text), err)
		}
	}
}

// TestFieldsStop: a loop that breaks off stops the reading, wherever it
// is (a yield after the loop ended would panic).
func TestFieldsStop(t *testing.T) {
	text := "A: b\n c\nmalformed\n\nD: e\n"
	for stop := 1; stop <= 3; stop++ { // a field, an error, a field
		n := 0
		for range Fields(strings.NewReader(text)) {
			n++
			if n == stop {
				break
			}
		}
		if n != stop {
			t.Errorf("break after %d items: the loop ran %d times", stop, n)
		}
	}
	n := 0
	for range Fields(strings.NewReader("A: " + strings.Repeat("x", MaxLine))) {
		n++
		break
	}
	if n != 1 {
		t.Errorf("break before the read error: %d items", n)
	}
}
