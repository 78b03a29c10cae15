// Package toolrun runs the system tools a build execs (mkfs, sfdisk,
// losetup, tar, ...) behind an interface a test can stand in for.
package toolrun

import (
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Runner runs a tool to its end.
type Runner interface {
	// Output runs name with args and returns its standard output.
	Output(name string, args ...string) ([]byte, error)
	// Combined runs name with args, stdin (nil for none) as its standard
	// input, and returns its standard output and error together.
	Combined(stdin io.Reader, name string, args ...string) ([]byte, error)
}

// Exec runs the real tools, found on PATH.
type Exec struct{}

// Output runs the tool as exec.Cmd.Output does.
func (Exec) Output(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).Output()
}

// Combined runs the tool as exec.Cmd.CombinedOutput does.
func (Exec) Combined(stdin io.Reader, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = stdin
	return cmd.CombinedOutput()
}

// Run runs a tool whose output matters only when it fails: the error then
// holds its command line and what it wrote.
func Run(r Runner, name string, args ...string) error {
	out, err := r.Combined(nil, name, args...)
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
