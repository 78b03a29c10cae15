package hookrunner

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
)

func write(t *testing.T, path, content string, perm os.FileMode) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
}

func TestRunOrderEnvironmentAndProfile(t *testing.T) {
	root := t.TempDir()
	log := filepath.Join(root, "log")
	write(t, filepath.Join(root, "environment.d", "20-b"), "export B=from-env-b\n", 0o644)
	write(t, filepath.Join(root, "environment.d", "10-a.bash"), "export A=from-env-a\nexport B=overridden\n", 0o644)
	for _, n := range []string{"10-second", "2-first", "zz"} {
		write(t, filepath.Join(root, "install.d", n), "#!/bin/sh\necho \"$0 A=$A B=$B\" >> "+log+"\n", 0o755)
	}
	write(t, filepath.Join(root, "install.d", "30-skipped"), "#!/bin/sh\nexit 1\n", 0o644)
	var out bytes.Buffer
	if err := Run(filepath.Join(root, "install.d"), []string{"PATH=/usr/bin:/bin"}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got, _ := os.ReadFile(log)
	d := filepath.Join(root, "install.d")
	want := d + "/zz A=from-env-a B=from-env-b\n" + d + "/2-first A=from-env-a B=from-env-b\n" + d + "/10-second A=from-env-a B=from-env-b\n"
	if string(got) != want {
		t.Errorf("ran:\n%s\nwant:\n%s", got, want)
	}
	for _, s := range []string{"dib-run-parts Running " + d + "/2-first", "dib-run-parts 2-first completed", "Target: install.d", "END PROFILING"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
}

func TestRunReportsFailure(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "install.d", "10-ok"), "#!/bin/sh\necho fine\n", 0o755)
	write(t, filepath.Join(root, "install.d", "20-fails"), "#!/bin/sh\nfor i in $(seq 1 30); do echo line $i; done\necho boom >&2\nexit 3\n", 0o755)
	write(t, filepath.Join(root, "install.d", "30-never"), "#!/bin/sh\ntouch "+filepath.Join(root, "ran")+"\n", 0o755)
	var out bytes.Buffer
	err := Run(filepath.Join(root, "install.d"), []string{"PATH=/usr/bin:/bin"}, &out)
	var f *api.Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v is not an api.Failure", err)
	}
	if f.Phase != "install.d" || f.Script != "20-fails" || f.Status != 3 {
		t.Errorf("failure %+v", f)
	}
	if len(f.Tail) != 20 || f.Tail[19] != "boom" || f.Tail[0] != "line 12" {
		t.Errorf("tail %q", f.Tail)
	}
	if _, err := os.Stat(filepath.Join(root, "ran")); err == nil {
		t.Error("a script after the failure ran")
	}
	path := filepath.Join(root, "failure.json")
	if err := WriteFailure(path, f); err != nil {
		t.Fatal(err)
	}
	back, err := ReadFailure(path)
	if err != nil || back.Script != "20-fails" || back.Status != 3 {
		t.Errorf("read back %+v, %v", back, err)
	}
}

// disk-image-create exports get_image_element_array to hooks; sourcing
// environment.d must not lose it.
func TestRunKeepsExportedFunctions(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "environment.d", "10-x"), "export X=1\n", 0o644)
	write(t, filepath.Join(root, "extra-data.d", "10-use"), "#!/bin/bash\nset -eu\neval declare -A a=($(get_image_element_array))\necho \"vm=${a[vm]}\"\n", 0o755)
	env := []string{"PATH=/usr/bin:/bin", "BASH_FUNC_get_image_element_array%%=() {  echo \"[base]=/e/base [vm]=/e/vm \"\n}"}
	var out bytes.Buffer
	if err := Run(filepath.Join(root, "extra-data.d"), env, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "vm=/e/vm\n") {
		t.Errorf("the hook did not get the function:\n%s", out.String())
	}
}

// events records what a Watcher hears, and refuses to go on after one
// hook.
type events struct {
	got    []string
	refuse string
}

func (e *events) Starting(script string) error {
	e.got = append(e.got, "start "+script)
	return nil
}

func (e *events) Finished(script string, took time.Duration, more bool) error {
	e.got = append(e.got, fmt.Sprintf("done %s more=%v slow=%v", script, more, took >= 200*time.Millisecond))
	if script == e.refuse {
		return errors.New("no checkpoint today")
	}
	return nil
}

// A run resumed after a hook starts with the next one, and its watcher,
// in this process or across the pipes of dib-run-parts --watch, hears of
// each hook in order, how long it took, and whether more follow; a
// watcher's error stops the run.
func TestRunAfterAndWatch(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "install.d")
	write(t, filepath.Join(dir, "10-a"), "#!/bin/sh\necho a\n", 0o755)
	write(t, filepath.Join(dir, "20-b"), "#!/bin/sh\nsleep 0.3\n", 0o755)
	write(t, filepath.Join(dir, "30-c"), "#!/bin/sh\necho c\n", 0o755)
	env := []string{"PATH=/usr/bin:/bin"}

	var out bytes.Buffer
	e := &events{}
	if err := RunWith(dir, env, &out, Options{After: "10-a", Watch: e}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	want := []string{"start 20-b", "done 20-b more=true slow=true", "start 30-c", "done 30-c more=false slow=false"}
	if !slices.Equal(e.got, want) {
		t.Errorf("heard %q, want %q", e.got, want)
	}
	if strings.Contains(out.String(), "Running "+dir+"/10-a") {
		t.Errorf("ran 10-a again:\n%s", out.String())
	}
	if err := RunWith(dir, env, &out, Options{After: "15-gone"}); err == nil || !strings.Contains(err.Error(), "no hook 15-gone") {
		t.Errorf("after a hook that is not there: %v", err)
	}

	// Across pipes, as dib-run-parts --watch and the build talk.
	eventsR, eventsW, _ := os.Pipe()
	answersR, answersW, _ := os.Pipe()
	e = &events{refuse: "20-b"}
	served := make(chan error, 1)
	go func() { served <- Serve(eventsR, answersW, e) }()
	w := &pipeWatcher{w: eventsW, r: bufio.NewReader(answersR)}
	err := RunWith(dir, env, &out, Options{Watch: w})
	eventsW.Close()
	if err == nil || err.Error() != "no checkpoint today" {
		t.Errorf("run: %v, want the watcher's refusal", err)
	}
	if err := <-served; err == nil {
		t.Errorf("Serve ended without the refusal")
	}
	want = []string{"start 10-a", "done 10-a more=true slow=false", "start 20-b", "done 20-b more=true slow=true"}
	if !slices.Equal(e.got, want) {
		t.Errorf("heard across pipes %q, want %q", e.got, want)
	}
}

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		after   string
		watched bool
		want    []string
	}{
		{"", false, nil},
		{"50-x", false, []string{"--after", "50-x"}},
		{"50-x", true, []string{"--after", "50-x", "--watch"}},
		{"", true, []string{"--watch"}},
	} {
		if got := Flags(c.after, c.watched); !slices.Equal(got, c.want) {
			t.Errorf("Flags(%q, %t) = %q, want %q", c.after, c.watched, got, c.want)
		}
	}
}

// RunWatched hands the process it starts the watch descriptors Main
// reads: a shell here plays dib-run-parts --watch on 3 and 4.
func TestRunWatchedDescriptors(t *testing.T) {
	script := `echo "start 10-a" >&` + fmt.Sprint(watchFD) + `; read a <&` + fmt.Sprint(answerFD) + `; echo "heard $a"
echo "done 10-a 5 false" >&` + fmt.Sprint(watchFD) + `; read a <&` + fmt.Sprint(answerFD) + `; echo "heard $a"`
	var out bytes.Buffer
	cmd := exec.Command("sh", "-c", script)
	cmd.Stdout = &out
	e := &events{}
	if err := RunWatched(cmd, e); err != nil {
		t.Fatal(err)
	}
	if want := []string{"start 10-a", "done 10-a more=false slow=false"}; !slices.Equal(e.got, want) {
		t.Errorf("heard %q, want %q", e.got, want)
	}
	if out.String() != "heard ok\nheard ok\n" {
		t.Errorf("the process heard %q", out.String())
	}
	// Without a watcher the command just runs.
	if err := RunWatched(exec.Command("sh", "-c", "exit 3"), nil); err == nil || err.Error() != "exit status 3" {
		t.Errorf("unwatched: %v", err)
	}
}

// A hook that leaves something running in the background with its
// output ends when its own process does, as in DIB; the next runs.
func TestRunDoesNotWaitForWhatAHookLeftRunning(t *testing.T) {
	root := t.TempDir()
	// The backgrounded list is a subshell that holds the hook's output
	// while it waits for sleep, whose own output goes nowhere.
	write(t, filepath.Join(root, "cleanup.d", "10-leaves"), "#!/bin/bash\necho leaving\ncd / && sleep 30 >/dev/null 2>&1 &\n", 0o755)
	write(t, filepath.Join(root, "cleanup.d", "20-next"), "#!/bin/sh\necho next\n", 0o755)
	var out bytes.Buffer
	start := time.Now()
	err := Run(filepath.Join(root, "cleanup.d"), []string{"PATH=/usr/bin:/bin"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the hooks took %s: the runner waited for the background job", took)
	}
	if !strings.Contains(out.String(), "leaving\n") || !strings.Contains(out.String(), "next\n") {
		t.Errorf("output %q", out.String())
	}
}
