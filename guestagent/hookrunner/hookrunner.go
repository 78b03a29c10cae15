// Package hookrunner is dib-run-parts for the guest: it runs the hooks of
// one phase directory in dib-run-parts order, with the environment that
// the phase's environment.d files set, prints what DIB prints, and on a
// failure records which script failed and how it ended.
//
// The agent binary is static, so the same code runs inside the target's
// chroot: the build copies the agent into the hook tree as dib-run-parts.
// It never runs as PID 1, so os/exec waits for its children as usual.
package hookrunner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dibvm/dibvm/elements/runparts"
	"github.com/dibvm/dibvm/guestagent/api"
)

const prefix = "dib-run-parts "

// Run runs the hooks in dir. env is the starting environment; the
// environment.d files beside dir are sourced into it first. Output goes to
// out (DIB's progress lines, the scripts' own stdout and stderr).
func Run(dir string, env []string, out io.Writer) error {
	phase := filepath.Base(dir)
	entries, err := readEntries(dir)
	if err != nil {
		return err
	}
	scripts, _ := runparts.Scripts(entries)
	env, err = sourceEnvironment(filepath.Join(dir, "..", "environment.d"), env, out)
	if err != nil {
		return fmt.Errorf("%s: environment.d: %w", phase, err)
	}
	var timings []runparts.Timing
	for _, s := range scripts {
		fmt.Fprintf(out, "%sRunning %s/%s\n", prefix, dir, s)
		start := time.Now()
		if err := runScript(filepath.Join(dir, s), env, out); err != nil {
			var f *api.Failure
			if errors.As(err, &f) {
				f.Phase, f.Script = phase, s
			}
			return err
		}
		timings = append(timings, runparts.Timing{Name: s, Duration: time.Since(start)})
		fmt.Fprintf(out, "%s%s completed\n", prefix, s)
	}
	fmt.Fprint(out, runparts.Profile(prefix, phase, timings))
	return nil
}

func readEntries(dir string) ([]runparts.Entry, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []runparts.Entry
	for _, d := range des {
		fi, err := os.Stat(filepath.Join(dir, d.Name())) // follow symlinks
		if err != nil {
			continue
		}
		out = append(out, runparts.Entry{Name: d.Name(), Mode: fi.Mode()})
	}
	return out, nil
}

// sourceEnvironment sources the environment.d files in one bash and
// returns the environment it exports, as DIB's dib-run-parts has every
// script of a phase inherit it.
func sourceEnvironment(dir string, env []string, out io.Writer) ([]string, error) {
	entries, err := readEntries(dir)
	if errors.Is(err, os.ErrNotExist) {
		return env, nil
	}
	if err != nil {
		return nil, err
	}
	files, _ := runparts.EnvironmentFiles(entries)
	if len(files) == 0 {
		return env, nil
	}
	args := []string{"-c", `for f; do echo "dib-run-parts Sourcing environment file $f" >&2; . "$f" || exit; done; exec env -0`, "bash"}
	for _, f := range files {
		args = append(args, filepath.Join(dir, f))
	}
	cmd := exec.Command("bash", args...)
	cmd.Env = env
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, out
	if err := cmd.Run(); err != nil {
		return nil, err
	}
	var result []string
	for _, kv := range strings.Split(stdout.String(), "\x00") {
		// Exported functions (BASH_FUNC_*, such as get_image_element_array)
		// stay: hooks call them.
		if kv != "" && !strings.HasPrefix(kv, "_=") && !strings.HasPrefix(kv, "SHLVL=") && !strings.HasPrefix(kv, "PWD=") {
			result = append(result, kv)
		}
	}
	return result, nil
}

// runScript runs one hook, passing its output through and keeping its
// last lines for the failure report.
func runScript(path string, env []string, out io.Writer) error {
	cmd := exec.Command(path)
	cmd.Env = env
	return RunCommand(cmd, out)
}

// RunCommand runs cmd as a hook is run: its output passes through to out,
// and a failure is an *api.Failure with the end of that output (Phase and
// Script are for the caller to fill in).
func RunCommand(cmd *exec.Cmd, out io.Writer) error {
	tail := &tailWriter{max: 20}
	w := io.MultiWriter(out, tail)
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	if err == nil {
		return nil
	}
	f := &api.Failure{Tail: tail.lines(), Status: -1}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		f.Status = ee.ExitCode()
		if ws, ok := ee.Sys().(interface{ Signaled() bool }); ok && ws.Signaled() {
			f.Signal = ee.String()
		}
	} else {
		f.Tail = append(f.Tail, err.Error())
	}
	return f
}

// WriteFailure saves f for the process that started this one.
func WriteFailure(path string, f *api.Failure) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// ReadFailure loads a failure written by WriteFailure.
func ReadFailure(path string) (*api.Failure, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f api.Failure
	return &f, json.Unmarshal(b, &f)
}

// tailWriter keeps the last max lines written to it.
type tailWriter struct {
	mu   sync.Mutex
	max  int
	buf  []string
	part []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, p...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		t.push(string(t.part[:i]))
		t.part = t.part[i+1:]
	}
	if len(t.part) > 4096 { // a very long line without a newline
		t.push(string(t.part))
		t.part = nil
	}
	return len(p), nil
}

// push keeps line, cut to api.MaxTailLine so that a failure's
// report fits in one control message whatever a hook printed.
func (t *tailWriter) push(line string) {
	t.buf = append(t.buf, api.ShortenTailLine(line))
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
}

func (t *tailWriter) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]string(nil), t.buf...)
	if len(t.part) > 0 {
		out = append(out, api.ShortenTailLine(string(t.part)))
	}
	return out
}

// Main is dib-run-parts's command line: dib-run-parts [--list] DIR. On a
// failure it exits with the script's status and, if DIBVM_FAILURE_FILE is
// set, records the failure there.
func Main(args []string) int {
	if len(args) == 2 && args[0] == "--list" {
		entries, err := readEntries(args[1])
		if err != nil {
			fmt.Fprintf(os.Stderr, "%sScripts directory [%s] must exist and be a directory\n", prefix, args[1])
			return 1
		}
		scripts, _ := runparts.Scripts(entries)
		for _, s := range scripts {
			fmt.Printf("%s/%s\n", args[1], s)
		}
		return 0
	}
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "Usage: dib-run-parts [--list] scripts_directory")
		return 1
	}
	err := Run(args[0], os.Environ(), os.Stdout)
	if err == nil {
		return 0
	}
	var f *api.Failure
	if errors.As(err, &f) {
		if p := os.Getenv("DIBVM_FAILURE_FILE"); p != "" {
			WriteFailure(p, f)
		}
		if f.Status > 0 {
			return f.Status
		}
		return 1
	}
	fmt.Fprintf(os.Stderr, "%s%v\n", prefix, err)
	return 1
}
