package toolrun

import (
	"io"
	"strings"
)

// Fake is a Runner for tests: it records each command line and its
// standard input, and answers with Reply, or with nothing when Reply is
// nil or returns nothing.
type Fake struct {
	Calls  [][]string // each call's name and arguments
	Stdins []string   // each call's standard input, "" for none
	Reply  func(call []string) ([]byte, error)
}

// Output records the call and replies.
func (f *Fake) Output(name string, args ...string) ([]byte, error) {
	return f.Combined(nil, name, args...)
}

// Combined records the call with its standard input and replies.
func (f *Fake) Combined(stdin io.Reader, name string, args ...string) ([]byte, error) {
	call := append([]string{name}, args...)
	in := ""
	if stdin != nil {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, err
		}
		in = string(b)
	}
	f.Calls = append(f.Calls, call)
	f.Stdins = append(f.Stdins, in)
	if f.Reply == nil {
		return nil, nil
	}
	return f.Reply(call)
}

// Lines are the calls' command lines, each joined by spaces.
func (f *Fake) Lines() []string {
	var out []string
	for _, c := range f.Calls {
		out = append(out, strings.Join(c, " "))
	}
	return out
}
