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
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dibvm/dibvm/elements/runparts"
	"github.com/dibvm/dibvm/guestagent/api"
)

const prefix = "dib-run-parts "

// Run runs the hooks in dir. env is the starting environment; the
// environment.d files beside dir are sourced into it first. Output goes to
// out (DIB's progress lines, the scripts' own stdout and stderr).
func Run(dir string, env []string, out io.Writer) error {
	return RunWith(dir, env, out, Options{})
}

// Options change which hooks a run starts with and who hears of them.
type Options struct {
	// After, when set, is a hook already run: the run starts with the
	// one after it, as a build resumed from the tree kept after it does.
	After string
	// Watch, when set, hears of each hook as it starts and ends.
	Watch Watcher
}

// Watcher hears of the hooks of a run, in order, and may hold the run
// up in between: the build keeps its tree after a slow hook.
type Watcher interface {
	// Starting is called before the hook starts.
	Starting(script string) error
	// Finished is called when the hook has succeeded, with how long it
	// took and whether hooks remain.
	Finished(script string, took time.Duration, more bool) error
}

// RunWith runs the hooks in dir as Run does, as opt says.
func RunWith(dir string, env []string, out io.Writer, opt Options) error {
	phase := filepath.Base(dir)
	entries, err := readEntries(dir)
	if err != nil {
		return err
	}
	scripts, _ := runparts.Scripts(entries)
	if opt.After != "" {
		i := slices.Index(scripts, opt.After)
		if i < 0 {
			return fmt.Errorf("%s has no hook %s to go on after", dir, opt.After)
		}
		scripts = scripts[i+1:]
	}
	env, err = sourceEnvironment(filepath.Join(dir, "..", "environment.d"), env, out)
	if err != nil {
		return fmt.Errorf("%s: environment.d: %w", phase, err)
	}
	var timings []runparts.Timing
	for i, s := range scripts {
		if opt.Watch != nil {
			if err := opt.Watch.Starting(s); err != nil {
				return err
			}
		}
		fmt.Fprintf(out, "%sRunning %s/%s\n", prefix, dir, s)
		start := time.Now()
		if err := runScript(filepath.Join(dir, s), env, out); err != nil {
			var f *api.Failure
			if errors.As(err, &f) {
				f.Phase, f.Script = phase, s
			}
			return err
		}
		took := time.Since(start)
		timings = append(timings, runparts.Timing{Name: s, Duration: took})
		fmt.Fprintf(out, "%s%s completed\n", prefix, s)
		if opt.Watch != nil {
			if err := opt.Watch.Finished(s, took, i < len(scripts)-1); err != nil {
				return err
			}
		}
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
	// A hook ends when its process does, as in DIB, even if something it
	// started in the background (a subshell waiting for a daemon) still
	// holds its output: what that writes after outputGrace is not shown.
	cmd.WaitDelay = outputGrace
	err := cmd.Run()
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
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

// outputGrace is how long a hook's output is still read after its
// process has exited.
const outputGrace = 2 * time.Second

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

// Main is dib-run-parts's command line:
//
//	dib-run-parts [--list] DIR
//	dib-run-parts [--after HOOK] [--watch] DIR
//
// On a failure it exits with the script's status and, if
// api.FailureFileEnv names a file, records the failure there. --after and
// --watch are the build's own (see Options): with --watch it tells of
// each hook on file descriptor 3 and waits for the answer on 4 (see
// Serve), which no hook inherits.
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
	var opt Options
	for len(args) > 1 {
		switch {
		case args[0] == "--after" && len(args) > 2:
			opt.After, args = args[1], args[2:]
		case args[0] == "--watch":
			syscall.CloseOnExec(watchFD)
			syscall.CloseOnExec(answerFD)
			opt.Watch = &pipeWatcher{w: os.NewFile(watchFD, "watch"), r: bufio.NewReader(os.NewFile(answerFD, "answer"))}
			args = args[1:]
		default:
			args = nil
		}
	}
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "Usage: dib-run-parts [--list] scripts_directory")
		return 1
	}
	err := RunWith(args[0], os.Environ(), os.Stdout, opt)
	if err == nil {
		return 0
	}
	var f *api.Failure
	if errors.As(err, &f) {
		if p := os.Getenv(api.FailureFileEnv); p != "" {
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

// Flags are the options of Main's command line that go on after the
// hook after, if any, and tell of each hook to the process that starts it
// with RunWatched if watched.
func Flags(after string, watched bool) []string {
	var args []string
	if after != "" {
		args = append(args, "--after", after)
	}
	if watched {
		args = append(args, "--watch")
	}
	return args
}

// RunWatched runs cmd, a dib-run-parts in another process started with
// Flags(…, true), answering it for watch (see Serve) on the descriptors
// Main reads; or cmd as it is when watch is nil.
func RunWatched(cmd *exec.Cmd, watch Watcher) error {
	if watch == nil {
		return cmd.Run()
	}
	events, eventsW, err := os.Pipe()
	if err != nil {
		return err
	}
	answersR, answers, err := os.Pipe()
	if err != nil {
		events.Close()
		eventsW.Close()
		return err
	}
	cmd.ExtraFiles = []*os.File{eventsW, answersR} // its watchFD and answerFD
	err = cmd.Start()
	eventsW.Close()
	answersR.Close()
	if err != nil {
		events.Close()
		answers.Close()
		return err
	}
	serveErr := Serve(events, answers, watch)
	events.Close()
	answers.Close()
	err = cmd.Wait()
	if serveErr != nil {
		return serveErr
	}
	return err
}

// The descriptors of --watch: the first extra file and the second.
const (
	watchFD  = 3
	answerFD = 4
)

// pipeWatcher is a Watcher in another process (Serve's), one line each
// way per event: "start HOOK", or "done HOOK NANOSECONDS MORE"; then
// "ok", or "error WHY".
type pipeWatcher struct {
	w io.Writer
	r *bufio.Reader
}

func (p *pipeWatcher) Starting(script string) error {
	return p.ask("start " + script)
}

func (p *pipeWatcher) Finished(script string, took time.Duration, more bool) error {
	return p.ask(fmt.Sprintf("done %s %d %t", script, took.Nanoseconds(), more))
}

func (p *pipeWatcher) ask(line string) error {
	if _, err := io.WriteString(p.w, line+"\n"); err != nil {
		return fmt.Errorf("tell the build: %w", err)
	}
	answer, err := p.r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("the build did not answer: %w", err)
	}
	if why, ok := strings.CutPrefix(strings.TrimSuffix(answer, "\n"), "error "); ok {
		return errors.New(why)
	}
	return nil
}

// Serve answers a dib-run-parts --watch that writes to r and reads from
// w, passing its events to watch, until r ends.
func Serve(r io.Reader, w io.Writer, watch Watcher) error {
	s := bufio.NewScanner(r)
	for s.Scan() {
		f := strings.Fields(s.Text())
		var err error
		switch {
		case len(f) == 2 && f[0] == "start":
			err = watch.Starting(f[1])
		case len(f) == 4 && f[0] == "done":
			ns, perr := strconv.ParseInt(f[2], 10, 64)
			more, berr := strconv.ParseBool(f[3])
			if perr != nil || berr != nil {
				return fmt.Errorf("dib-run-parts said %q", s.Text())
			}
			err = watch.Finished(f[1], time.Duration(ns), more)
		default:
			return fmt.Errorf("dib-run-parts said %q", s.Text())
		}
		answer := "ok\n"
		if err != nil {
			answer = "error " + strings.ReplaceAll(err.Error(), "\n", " ") + "\n"
		}
		if _, werr := io.WriteString(w, answer); werr != nil {
			return werr
		}
		if err != nil {
			return err
		}
	}
	return s.Err()
}
