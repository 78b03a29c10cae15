package session

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/elementtest"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/agentclient"
	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/iso"
	"github.com/dibvm/dibvm/host/machine"
	"github.com/dibvm/dibvm/host/outputs"
	"github.com/dibvm/dibvm/host/termsafe"
)

// fakeVM stands in for the helper VM, in process: its disks are sparse
// files in a directory, its build is a Go function that writes control
// messages and reads the host's words, as the guest's dib-build does, and
// its break shell echoes the line the user typed.
type fakeVM struct {
	dir   string
	guest func(g *guest) error

	mu        sync.Mutex
	opts      machine.Options
	shells    []string // the line each shell read
	snapshots []string // the serials switched to a new layer
	fetched   []int64  // the output disk's length, as fetched
	shutdown  bool
	closed    chan struct{}
	closeOnce sync.Once
}

func newFakeVM(t *testing.T, guest func(g *guest) error) *fakeVM {
	return &fakeVM{dir: t.TempDir(), guest: guest, closed: make(chan struct{})}
}

// start is the session's start: it makes the disks mo asks for.
func (f *fakeVM) start(_ context.Context, mo machine.Options) (VM, error) {
	f.opts = mo
	for _, d := range mo.Disks {
		if d.Size > 0 {
			if err := os.WriteFile(f.DiskPath(d.Serial), nil, 0o600); err != nil {
				return nil, err
			}
			if err := os.Truncate(f.DiskPath(d.Serial), d.Size); err != nil {
				return nil, err
			}
		}
	}
	return f, nil
}

func (f *fakeVM) Run(cmd agentclient.Command) error {
	switch cmd.Line {
	case api.BuildLine:
		return f.guest(&guest{vm: f, cmd: cmd, words: bufio.NewReader(cmd.Stdin)})
	case api.BreakShellLine:
		line, err := bufio.NewReader(cmd.Stdin).ReadString('\n')
		f.mu.Lock()
		f.shells = append(f.shells, strings.TrimSpace(line))
		f.mu.Unlock()
		io.WriteString(cmd.Stdout, "shell ran "+line)
		return err
	}
	return errors.New("no such command: " + cmd.Line)
}

func (f *fakeVM) Snapshot(_ context.Context, serial, overlay string) error {
	if _, err := os.Stat(overlay); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snapshots = append(f.snapshots, serial)
	return nil
}

func (f *fakeVM) Fetch(serial string, length int64) error {
	if serial == api.OutputSerial {
		f.fetched = append(f.fetched, length)
	}
	return nil
}

func (f *fakeVM) DiskPath(serial string) string { return filepath.Join(f.dir, serial+".img") }
func (f *fakeVM) Explain(err error) error       { return err }
func (f *fakeVM) Shutdown()                     { f.shutdown = true }

func (f *fakeVM) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}

// guest is the fake's side of the build's control stream.
type guest struct {
	vm    *fakeVM
	cmd   agentclient.Command
	words *bufio.Reader
	heard []string
}

func (g *guest) send(m api.Message) { api.WriteMessage(g.cmd.Stdout, m) }

// word is the host's next word on the build's stdin.
func (g *guest) word() string {
	line, err := g.words.ReadString('\n')
	if err != nil {
		return "(" + err.Error() + ")"
	}
	g.heard = append(g.heard, strings.TrimSpace(line))
	return strings.TrimSpace(line)
}

// ran is a hook of the build's, started and finished.
func (g *guest) ran(phase, script string) {
	g.send(api.Message{Hook: &api.Hook{Phase: phase, Script: script}})
	g.send(api.Message{Hook: &api.Hook{Phase: phase, Script: script, Done: true}})
}

// outputTar writes a tar of one file at the start of the output disk,
// as the guest's tar of the tree, and says where it is.
func (g *guest) outputTar() *api.Result {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "etc/motd", Mode: 0o644, Size: 3})
	tw.Write([]byte("hi\n"))
	tw.Close()
	disk, err := os.OpenFile(g.vm.DiskPath(api.OutputSerial), os.O_WRONLY, 0)
	if err == nil {
		_, err = disk.WriteAt(b.Bytes(), 0)
		disk.Close()
	}
	if err != nil {
		g.send(api.Message{Error: err.Error()})
		return nil
	}
	return &api.Result{TarSize: int64(b.Len())}
}

// testJob is a tar build of an element with one install.d hook, which
// stops where brk says.
func testJob(t *testing.T, brk string) (*Job, *bytes.Buffer) {
	t.Helper()
	root := elementtest.WriteTree(t, map[string]string{
		"os/element-provides":   "operating-system\n",
		"os/install.d/10-a*":    "#!/bin/sh\necho a\n",
		"os/environment.d/10-x": "export X=1\n",
	})
	lib, err := elements.NewLibrary(root, elements.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	els, err := elements.Expand(lib, elements.CommandLine([]string{"os"}, true, "amd64"))
	if err != nil {
		t.Fatal(err)
	}
	hooks, _, err := elements.BuildHooks(els, nil)
	if err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	if err := elements.WriteTar(&tarball, els, hooks); err != nil {
		t.Fatal(err)
	}
	order, err := elements.ReadMergedHooks(bytes.NewReader(tarball.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	types := []string{"tar"}
	spec := &api.Spec{ImageName: "img", Elements: elements.Names(els), Arch: "amd64", Types: types, Break: brk}
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	stdout := termsafe.NewWriter(&out)
	return &Job{
		Spec:   spec,
		Inputs: []iso.File{{Name: api.SpecFile, Data: js}, {Name: api.ElementsTar, Data: tarball.Bytes()}},
		Hooks:  hooks, Order: order,
		ScratchSize: 64 << 20,
		Outputs:     outputs.Options{Output: filepath.Join(t.TempDir(), "img"), Types: types, Stdout: stdout},
		Stdout:      stdout,
	}, &out
}

// runSession runs j with vm behind it, on a terminal where the user has
// typed typed, and returns what the terminal shows.
func runSession(t *testing.T, j *Job, vm *fakeVM, typed string) (*bytes.Buffer, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	io.WriteString(w, typed)
	w.Close()
	var termOut bytes.Buffer
	s := &session{j: j, start: vm.start,
		term: &terminal{stdin: r, input: &inputRelay{src: r}, stdout: &termOut, stderr: &termOut}}
	return &termOut, s.run(context.Background(), machine.Options{})
}

// A build that stops at a breakpoint gets a shell on the user's terminal
// and the host's go once it ends; its outputs are taken off the output
// disk, once the VM has stopped, into place.
func TestSessionBreakShellAndOutputs(t *testing.T) {
	j, out := testJob(t, "after-install")
	var g0 *guest
	vm := newFakeVM(t, func(g *guest) error {
		g0 = g
		g.send(api.Message{Step: &api.Step{Name: "install.d"}})
		g.ran("install.d", "10-a")
		g.send(api.Message{Break: &api.Break{Point: "after-install", Chroot: true}})
		g.word()
		g.send(api.Message{Result: g.outputTar()})
		return nil
	})
	term, err := runSession(t, j, vm, "ls /\n")
	if err != nil {
		t.Fatalf("the build failed: %v\n%s", err, out)
	}
	if !slices.Equal(g0.heard, []string{api.ReplyGo}) {
		t.Errorf("the guest heard %q, want go after the shell", g0.heard)
	}
	if !slices.Equal(vm.shells, []string{"ls /"}) || !strings.Contains(term.String(), "dibvm: stopped at after-install; a shell is open in the image's chroot") || !strings.Contains(term.String(), "shell ran ls /") {
		t.Errorf("shells %q; the terminal shows:\n%s", vm.shells, term)
	}
	tarball, err := os.ReadFile(j.Outputs.Output + ".tar")
	if err != nil || !bytes.Contains(tarball, []byte("etc/motd")) {
		t.Errorf("the tar output: %v, %d bytes", err, len(tarball))
	}
	if !vm.shutdown || len(vm.fetched) != 1 || vm.fetched[0] != int64(len(tarball)) {
		t.Errorf("the output disk was read with the VM shut down %v, fetched %v", vm.shutdown, vm.fetched)
	}
	for _, want := range []string{"Building elements: os", "Image file " + j.Outputs.Output + ".tar created..."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the build does not say %q:\n%s", want, out)
		}
	}
	if len(vm.opts.Disks) != 2 || vm.opts.Disks[0].Serial != api.ScratchSerial || vm.opts.Disks[1].Size != 64<<20 {
		t.Errorf("the VM's disks: %+v", vm.opts.Disks)
	}
	if !slices.ContainsFunc(vm.opts.Inputs, func(f iso.File) bool { return f.Name == api.ElementsTar }) {
		t.Error("the input disk has no elements tar")
	}
}

// A failed hook is reported with the element it belongs to, and no
// output is written.
func TestSessionHookFailure(t *testing.T) {
	j, _ := testJob(t, "")
	vm := newFakeVM(t, func(g *guest) error {
		g.send(api.Message{Hook: &api.Hook{Phase: "install.d", Script: "10-a"}})
		g.send(api.Message{Failure: &api.Failure{Phase: "install.d", Script: "10-a", Status: 3, Tail: []string{"E: boom"}}})
		return &agentclient.ExitError{Status: 1}
	})
	_, err := runSession(t, j, vm, "")
	var he *HookError
	if !errors.As(err, &he) || he.Element != "os" || !strings.Contains(err.Error(), "E: boom") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("a failed hook: %v", err)
	}
	if vm.shutdown || len(vm.fetched) > 0 {
		t.Error("the output disk of a failed build was read")
	}
	if _, err := os.Stat(j.Outputs.Output + ".tar"); err == nil {
		t.Error("a failed build wrote its output")
	}
}

// A forged control message stops the VM, and the build fails with the
// violation; no shell opens.
func TestSessionStopsAViolation(t *testing.T) {
	j, _ := testJob(t, "")
	vm := newFakeVM(t, func(g *guest) error {
		g.send(api.Message{Break: &api.Break{Point: "after-install", Chroot: true}})
		select {
		case <-g.vm.closed:
			return errors.New("the helper VM stopped")
		case <-time.After(10 * time.Second):
			return errors.New("the host did not stop the VM")
		}
	})
	_, err := runSession(t, j, vm, "ls\n")
	var ve *ViolationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "where break= did not ask") {
		t.Fatalf("a forged break: %v", err)
	}
	if len(vm.shells) > 0 {
		t.Errorf("opened shells %q", vm.shells)
	}
}

// A build with checkpoints keeps the tree where the host says keep: the
// scratch disk, on a layer of the store, is switched to a new one, and
// the layer it wrote becomes the checkpoint. The layers are real qcow2
// files made with qemu-img, without a VM.
func TestSessionKeepsACheckpoint(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is needed (scripts/install-deps.sh installs it)")
	}
	store := &checkpoint.Store{Dir: filepath.Join(t.TempDir(), "checkpoints")}
	j, out := testJob(t, "")
	steps, err := checkpoint.StepInputs(j.Spec, nil, j.Inputs[1].Data)
	if err != nil {
		t.Fatal(err)
	}
	j.Steps, j.Store, j.Limits = steps, store, checkpoint.Limits{MaxAge: time.Hour}
	var g0 *guest
	vm := newFakeVM(t, func(g *guest) error {
		g0 = g
		g.send(api.Message{Point: &api.Point{Phase: "root.d"}})
		if g.word() == api.ReplyKeep {
			g.send(api.Message{Checkpoint: &api.Checkpoint{Phase: "root.d"}})
			g.word()
		}
		g.ran("install.d", "10-a")
		g.send(api.Message{Result: g.outputTar()})
		return nil
	})
	if _, err := runSession(t, j, vm, ""); err != nil {
		t.Fatalf("the build failed: %v\n%s", err, out)
	}
	if !slices.Equal(g0.heard, []string{api.ReplyKeep, api.ReplyGo}) || !slices.Equal(vm.snapshots, []string{api.ScratchSerial}) {
		t.Errorf("the guest heard %q; switched disks %q", g0.heard, vm.snapshots)
	}
	if vm.opts.Disks[0].Layer == "" || !slices.Contains(j.Spec.Checkpoints, "root.d") {
		t.Errorf("the scratch disk %+v; phases to keep %q", vm.opts.Disks[0], j.Spec.Checkpoints)
	}
	kept, err := store.List()
	if err != nil || len(kept) != 1 || kept[0].Phase != "root.d" {
		t.Errorf("the store holds %v, %v", kept, err)
	}
	if !strings.Contains(out.String(), "dibvm: kept the tree after root.d") {
		t.Errorf("the build does not say what it kept:\n%s", out)
	}
}
