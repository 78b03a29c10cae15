package dibbuild

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/control"
	"github.com/dibvm/dibvm/guestagent/emitted"
	"github.com/dibvm/dibvm/guestagent/imageroot"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

// The steps a build can be kept after are the host's checkpoint phases,
// in its order; the image's steps follow, as in disk-image-create.
func TestPhaseOrder(t *testing.T) {
	b := &build{spec: &api.Spec{}}
	var kept []string
	for _, st := range b.keptSteps() {
		kept = append(kept, st.phase)
	}
	if !slices.Equal(kept, api.CheckpointPhases) {
		t.Errorf("kept steps %q, want the checkpoint phases %q", kept, api.CheckpointPhases)
	}
	var rest []string
	for _, st := range b.imageSteps() {
		rest = append(rest, st.name)
	}
	if want := []string{"post-root.d", api.StepImage, "pre-finalise.d", "finalise.d"}; !slices.Equal(rest, want) {
		t.Errorf("image steps %q, want %q", rest, want)
	}
	// An opened image's command runs after finalise.d.
	b = &build{spec: &api.Spec{Open: true, Command: "true"}}
	rest = nil
	for _, st := range b.imageSteps() {
		rest = append(rest, st.name)
	}
	if want := []string{"post-root.d", api.StepImage, "pre-finalise.d", "finalise.d", api.StepCommand}; !slices.Equal(rest, want) {
		t.Errorf("an opened image's steps %q, want %q", rest, want)
	}
}

func TestScheduleOfAResumedBuild(t *testing.T) {
	phases := api.CheckpointPhases
	for _, c := range []struct {
		resume string
		want   []planned
	}{
		{"", []planned{{run: true}, {run: true}, {run: true}, {run: true}}},
		// Kept after root.d: the tree is there, root.d is not run again.
		{"root.d", []planned{{}, {run: true}, {run: true}, {run: true}}},
		// Kept after a hook of install.d: it goes on after that hook.
		{"install.d/50-slow", []planned{{}, {}, {run: true, after: "50-slow"}, {run: true}}},
		{"post-install.d", []planned{{}, {}, {}, {}}},
	} {
		if got := schedule(phases, c.resume); !slices.Equal(got, c.want) {
			t.Errorf("resumed at %q: %+v, want %+v", c.resume, got, c.want)
		}
	}
}

// testBuild is a build laid out in a temporary directory, talking to a
// host that is a buffer.
func testBuild(t *testing.T, spec *api.Spec) (*build, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	var ctl bytes.Buffer
	return &build{spec: spec, input: "/run/dibvm/input", hooks: filepath.Join(dir, "hooks"),
		elements: "/build/elements", target: "/build/mnt", work: "/build/work",
		host: control.New(&ctl, strings.NewReader(""), io.Discard), out: io.Discard}, &ctl
}

// A phase without hooks runs (for its breakpoints) but shows no step; one
// with hooks is a step the host hears start and end; the image step
// shows only for a disk image.
func TestSteps(t *testing.T) {
	b, ctl := testBuild(t, &api.Spec{})
	os.MkdirAll(filepath.Join(b.hooks, "install.d"), 0o755)
	var ran []string
	for _, name := range []string{"root.d", "install.d", api.StepImage, api.StepOutputs} {
		if err := b.step(name, func() error { ran = append(ran, name); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"root.d", "install.d", api.StepOutputs}; !slices.Equal(ran, want) {
		t.Errorf("ran %q, want %q", ran, want)
	}
	var told []string
	for {
		m, err := api.ReadMessage(ctl)
		if err != nil {
			break
		}
		told = append(told, m.Step.Name+map[bool]string{true: " done"}[m.Step.Done])
	}
	if want := []string{"install.d", "install.d done", api.StepOutputs, api.StepOutputs + " done"}; !slices.Equal(told, want) {
		t.Errorf("told %q, want %q", told, want)
	}
}

// env is an environment list as a map.
func env(list []string) map[string]string {
	m := map[string]string{}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestEnvironmentGivenToHooks(t *testing.T) {
	t.Setenv("http_proxy", "http://10.0.2.100:3128")
	t.Setenv("NO_PROXY", "")
	os.Unsetenv("NO_PROXY")
	b, _ := testBuild(t, &api.Spec{Arch: "amd64", ImageName: "img", Elements: []string{"vm", "debian"},
		RootLabel: "cloudimg-rootfs", RootFSType: "ext4", Trace: true,
		Env: map[string]string{"DIB_RELEASE": "bookworm", "PATH": "/host/bin", "DIB_ROOT_LABEL": "mine", "FOO": "bar",
			// The host sets the variables that lend its paths to the copies.
			"DIB_DEV_USER_AUTHORIZED_KEYS": api.LentDir + "/lent0.tar/0/keys", "MY_CONFIG": api.LentDir + "/lent1.tar/0/my.conf"},
		HostPaths: []string{"lent0.tar", "lent1.tar"}})
	b.lent = map[string]string{"DIB_LOCAL_IMAGE": "/dev/vdd"}
	e := env(b.environment())
	for k, want := range map[string]string{
		"PATH":                                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" + b.hooks + "/dibvm-bin:/tmp/in_target.d/dibvm-bin",
		"TARGET_ROOT":                         "/build/mnt",
		"TMP_MOUNT_PATH":                      "/build/mnt",
		"TMP_HOOKS_PATH":                      b.hooks,
		"TMP_BUILD_DIR":                       "/build/work",
		"IMAGE_NAME":                          "/build/out/img",
		"_LIB":                                "/build/lib",
		"ELEMENTS_PATH":                       "/build/elements",
		"IMAGE_ELEMENT":                       "vm debian",
		"IMAGE_ELEMENT_YAML":                  "vm: /build/elements/vm\ndebian: /build/elements/debian\n",
		"DIB_DEBUG_TRACE":                     "1",
		"DIB_RELEASE":                         "bookworm", // the caller's DIB_* settings
		"DIB_ROOT_LABEL":                      "mine",     // replace the build's defaults
		"FOO":                                 "bar",
		"DIB_DEV_USER_AUTHORIZED_KEYS":        "/build/lent/lent0.tar/0/keys",
		"MY_CONFIG":                           "/build/lent/lent1.tar/0/my.conf",
		"DIB_LOCAL_IMAGE":                     "/dev/vdd",
		"DIB_IMAGE_CACHE":                     "/build/cache",
		api.ManifestsEnv:                      "/build/manifests",
		"http_proxy":                          "http://10.0.2.100:3128",
		"DIB_OFFLINE":                         "", // set, as DIB's hooks use it bare under set -u
		"DIB_LOCKFILES":                       "/build/lockfiles",
		"DIB_MOUNTPOINTS":                     "/",
		"BASH_FUNC_get_image_element_array%%": "() {  echo \"[vm]=/build/elements/vm [debian]=/build/elements/debian \"\n}",
	} {
		if e[k] != want {
			t.Errorf("%s = %q, want %q", k, e[k], want)
		}
	}
	if _, ok := e["NO_PROXY"]; ok {
		t.Error("NO_PROXY given though the helper has none")
	}
	if _, ok := e["DIB_OFFLINE"]; !ok {
		t.Error("DIB_OFFLINE is not set")
	}
	b.env = b.environment()
	b.setEnv("DIB_BOOT_LABEL", "boot")
	if e := env(b.env); e["DIB_BOOT_LABEL"] != "boot" || strings.Count(strings.Join(b.env, "\n"), "DIB_BOOT_LABEL=") != 1 {
		t.Errorf("setEnv left %q", e["DIB_BOOT_LABEL"])
	}
}

// The functions disk-image-create exports reach a hook's bash through
// the environment: die stops the hook with the failed command's status
// (1 after a success), saying why on stderr, as common-functions' die
// does; get_image_element_array prints the elements.
func TestExportedFunctions(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("the test needs bash")
	}
	b, _ := testBuild(t, &api.Spec{Arch: "amd64", ImageName: "img", Elements: []string{"vm"}})
	hookEnv := slices.DeleteFunc(b.environment(), func(e string) bool { return strings.HasPrefix(e, "PATH=") })
	lib, err := os.ReadFile("dib-lib/common-functions")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, script string
		status       int
		stdout       string
	}{
		{"die after a failure", `set -eu; false || die "no such file: x"; echo not reached`, 1, ""},
		{"die keeps the status", `set -eu; (exit 3) || die "gone"`, 3, ""},
		{"die after a success", `if [[ ! -f /nonexistent ]]; then die "gone"; fi; echo not reached`, 1, ""},
		{"the library's die", string(lib) + "\n" + `(exit 3) || die "gone"`, 3, ""},
		{"elements", `set -eu; declare -A a="($(get_image_element_array))"; echo "${!a[@]}"`, 0, "vm\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bash, "-c", tc.script)
			cmd.Env = append(hookEnv, "PATH="+os.Getenv("PATH"))
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			status := cmd.ProcessState.ExitCode()
			if status != tc.status || stdout.String() != tc.stdout {
				t.Errorf("status %d, stdout %q (%v); want %d, %q", status, stdout.String(), err, tc.status, tc.stdout)
			}
			if tc.status != 0 && stderr.String() != "gone\n" && !strings.Contains(stderr.String(), "no such file: x") {
				t.Errorf("stderr %q does not say why", stderr.String())
			}
		})
	}
}

// DIB_MOUNTPOINTS lists the layout's mount points in its order, as DIB's
// block-device getval mount-points does: partitions, then logical
// volumes, those without a filesystem or a mount point left out.
func TestMountPoints(t *testing.T) {
	layout := &api.Layout{
		Partitions: []api.Partition{
			{Name: "ESP", FS: &api.Filesystem{Type: "vfat", MountPoint: "/boot/efi"}},
			{Name: "BSP"},
			{Name: "root", FS: &api.Filesystem{Type: "ext4", MountPoint: "/"}},
		},
		LVM: &api.LVM{LVs: []api.LogicalVolume{{Name: "lv_var", FS: &api.Filesystem{Type: "xfs", MountPoint: "/var"}},
			{Name: "swap", FS: &api.Filesystem{Type: "swap"}}}},
	}
	if got := mountPoints(layout); got != "/boot/efi|/|/var" {
		t.Errorf("mountPoints = %q", got)
	}
	if got := mountPoints(nil); got != "/" {
		t.Errorf("without a layout: %q", got)
	}
}

// What DIB's own manifests element saves at IMAGE_NAME.d goes with the
// manifests; an empty or missing IMAGE_NAME.d adds nothing.
func TestSaveManifestsFromImageNameD(t *testing.T) {
	b, _ := testBuild(t, &api.Spec{ImageName: "img"})
	run := &toolrun.Fake{}
	b.run = run
	b.emitted = &emitted.Dir{Path: t.TempDir(), Image: "img", Skip: "img.d"}
	if err := b.saveManifests(); err != nil || len(run.Calls) != 0 {
		t.Fatalf("no img.d: %v, ran %q", err, run.Lines())
	}
	os.MkdirAll(filepath.Join(b.emitted.Path, "img.d", "dib-manifests"), 0o755)
	if err := b.saveManifests(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"cp -a " + b.emitted.Path + "/img.d/. /build/manifests"}; !slices.Equal(run.Lines(), want) {
		t.Errorf("ran %q, want %q", run.Lines(), want)
	}
}

// The host's lent files are unpacked onto the scratch disk, beside the
// tree and out of the chroot's sight.
func TestLentDirIsOnTheScratchDisk(t *testing.T) {
	if filepath.Dir(api.LentDir) != root {
		t.Errorf("api.LentDir %s is not on the scratch disk, mounted at %s", api.LentDir, root)
	}
}

// A disk lent under a variable is reached through a link named as the
// host's file, made anew (a resumed build's devices may differ); a name
// that is no plain file name gives the device itself.
func TestLinkLentDisk(t *testing.T) {
	dir := t.TempDir()
	for _, dev := range []string{"/dev/vdc", "/dev/vdd"} {
		got, err := linkLentDisk(dir, "DIB_LOCAL_IMAGE", "CentOS-Stream-GenericCloud-9.qcow2.xz", dev)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(dir, "DIB_LOCAL_IMAGE", "CentOS-Stream-GenericCloud-9.qcow2.xz"); got != want {
			t.Errorf("link %s, want %s", got, want)
		}
		if target, err := os.Readlink(got); err != nil || target != dev {
			t.Errorf("link to %q, %v; want %s", target, err, dev)
		}
	}
	for _, name := range []string{"", ".", "..", "a/b"} {
		if got, err := linkLentDisk(dir, "DIB_LOCAL_IMAGE", name, "/dev/vdc"); err != nil || got != "/dev/vdc" {
			t.Errorf("name %q: %q, %v; want the device", name, got, err)
		}
	}
}

// The hooks of a build that opens an image hear of the image's own root,
// /boot and ESP, whatever the build's defaults and the caller's settings
// say.
func TestOpenedImageTellsItsLayout(t *testing.T) {
	b, _ := testBuild(t, &api.Spec{Arch: "amd64", ImageName: "img", Elements: []string{"x"}, Open: true,
		RootLabel: "cloudimg-rootfs", RootFSType: "ext4", Env: map[string]string{"DIB_ROOT_LABEL": "mine"}})
	b.env = b.environment()
	b.tellOpened(imageroot.Layout{
		Root: &imageroot.Partition{FSType: "xfs", Label: "root"},
		Boot: &imageroot.Partition{FSType: "xfs", Label: "boot"},
		EFI:  &imageroot.Partition{FSType: "vfat"},
	})
	e := env(b.env)
	for k, want := range map[string]string{
		"DIB_ROOT_FSTYPE": "xfs", "DIB_ROOT_LABEL": "root", "DIB_BOOT_LABEL": "boot", "DIB_MOUNTPOINTS": "/|/boot|/boot/efi",
	} {
		if e[k] != want {
			t.Errorf("%s=%q, want %q", k, e[k], want)
		}
	}
}
