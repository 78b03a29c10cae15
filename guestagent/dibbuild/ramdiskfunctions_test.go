package dibbuild

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// libShell runs script in bash with the library written afresh at $LIB
// (and _LIB), set -eu and pipefail as DIB's hooks have them, PATH and env
// its only variables, and args as $1....
func libShell(t *testing.T, script string, env []string, args ...string) (string, error) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("the test needs bash")
	}
	lib := filepath.Join(t.TempDir(), "lib")
	if err := writeLib(lib); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bash, append([]string{"-c", "set -eu; set -o pipefail; " + script, "-"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LIB=" + lib, "_LIB=" + lib}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// writeFiles writes files (name: content) under dir, as executables when
// the name ends in !.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		mode := os.FileMode(0o644)
		if n, ok := strings.CutSuffix(name, "!"); ok {
			name, mode = n, 0o755
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// The six files ramdisk-base copies into the target are all there, and
// sourced in dracut-ramdisk's order under set -u they give the variables
// its hook reads and the functions it calls.
func TestRamdiskLibrarySourcesAsDracutRamdiskDoes(t *testing.T) {
	for _, f := range []string{"common-defaults", "common-functions", "ramdisk-defaults", "ramdisk-functions", "img-defaults", "img-functions"} {
		if _, err := dibLib.Open("dib-lib/" + f); err != nil {
			t.Errorf("the library has no %s: %v", f, err)
		}
	}
	script := `for f in common-defaults img-defaults ramdisk-defaults common-functions img-functions ramdisk-functions; do source "$LIB/$f"; done
echo "ARCH=$ARCH MODULE_ROOT=$MODULE_ROOT LIB_UDEV_ROOT=$LIB_UDEV_ROOT NO_TMPFS=$DIB_NO_TMPFS IMAGE_NAME=$IMAGE_NAME FS_TYPE=$FS_TYPE"
for fn in find_kernel_version mk_build_dir populate_init populate_udev run_d die select_boot_kernel_initrd; do declare -F "$fn" >/dev/null || echo "no $fn"; done
case ":$PATH:" in *:/usr/sbin:*) ;; *) echo "no /usr/sbin in PATH" ;; esac`
	out, err := libShell(t, script, []string{"ARCH=arm64", "DIB_MODULE_ROOT=/mods", "IMAGE_NAME=/build/out/x"})
	want := "ARCH=arm64 MODULE_ROOT=/mods LIB_UDEV_ROOT= NO_TMPFS=0 IMAGE_NAME=/build/out/x FS_TYPE=ext4\n"
	if err != nil || out != want {
		t.Errorf("got %q, %v; want %q", out, err, want)
	}
	// ramdisk-defaults alone has a ramdisk's defaults, and ARCH from the machine.
	out, err = libShell(t, `source "$LIB/ramdisk-defaults"; echo "$DIB_NO_TMPFS $DIB_MIN_TMPFS $RAMDISK_ELEMENT ${ARCH:+arch}"`, nil)
	if err != nil || out != "1 1 ramdisk arch\n" {
		t.Errorf("ramdisk-defaults: got %q, %v", out, err)
	}
}

func TestFindKernelVersion(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  string
	}{
		{"newest by version", []string{"boot/vmlinuz-6.1.0-9-amd64", "boot/vmlinuz-6.1.0-10-amd64", "boot/initrd.img-6.1.0-10-amd64", "boot/config-6.1.0-11-amd64"}, "6.1.0-10-amd64"},
		{"vmlinux", []string{"boot/vmlinux-5.14.0-70.el9.ppc64le"}, "5.14.0-70.el9.ppc64le"},
		{"none", []string{"boot/config-6.1.0-10-amd64", "boot/vmlinuz"}, ""},
		{"no boot", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, f := range tc.files {
				writeFiles(t, root, map[string]string{f: ""})
			}
			// As dracut-ramdisk calls it: in a command substitution, under set -e.
			out, err := libShell(t, `source "$LIB/ramdisk-functions"; v=$(find_kernel_version "$1"); echo "version $v"`, nil, root)
			if tc.want == "" {
				if err == nil || !strings.Contains(out, "Unable to find a suitable kernel in "+root+"/boot") || strings.Contains(out, "version") {
					t.Errorf("got %q, %v; want the hook stopped, naming the directory", out, err)
				}
				return
			}
			if err != nil || out != "version "+tc.want+"\n" {
				t.Errorf("got %q, %v; want %q", out, err, tc.want)
			}
		})
	}
}

// populate_init's /init is INIT, each init.d fragment in C order after a
// line naming it, then INIT-end; FUNCTIONS_D's files go beside it.
func TestPopulateInit(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"scripts/init":             "#!/bin/bash\necho init\n",
		"scripts/init-end":         "\necho end\n",
		"scripts/d/init-func":      "f() { :; }\n",
		"scripts/d/iscsi-func":     "g() { :; }\n",
		"in_target/init.d/40-net":  "echo net\n",
		"in_target/init.d/20-vars": "X=1\n",
		"in_target/init.d/Z-last":  "echo Z\n",
		"in_target/init.d/1x":      "echo 1x\n",
		"mnt/.keep":                "",
	})
	script := `source "$LIB/ramdisk-functions"; populate_init`
	out, err := libShell(t, script, []string{
		"_dibvm_in_target=" + filepath.Join(dir, "in_target"),
		"INIT=" + filepath.Join(dir, "scripts/init"),
		"FUNCTIONS_D=" + filepath.Join(dir, "scripts/d"),
		"TMP_MOUNT_PATH=" + filepath.Join(dir, "mnt"),
	})
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "mnt/init"))
	if err != nil {
		t.Fatal(err)
	}
	want := "#!/bin/bash\necho init\n" +
		"\n# init fragment from 1x\necho 1x\n" +
		"\n# init fragment from 20-vars\nX=1\n" +
		"\n# init fragment from 40-net\necho net\n" +
		"\n# init fragment from Z-last\necho Z\n" +
		"\necho end\n"
	if string(got) != want {
		t.Errorf("init is\n%s\nwant\n%s", got, want)
	}
	if fi, err := os.Stat(filepath.Join(dir, "mnt/init")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("init is not executable: %v", err)
	}
	for _, f := range []string{"init-func", "iscsi-func"} {
		if _, err := os.Stat(filepath.Join(dir, "mnt", f)); err != nil {
			t.Errorf("%s not beside init: %v", f, err)
		}
	}
}

// mount_dev_pts_options gives mount the options of this system's own
// /dev/pts, as yum-minimal's hook passes them on.
func TestMountDevPtsOptions(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("findmnt and devpts are Linux's, as the helper is")
	}
	want, err := exec.Command("findmnt", "--first-only", "--noheadings", "--output", "OPTIONS", "/dev/pts").Output()
	if err != nil {
		t.Fatalf("findmnt /dev/pts: %v", err)
	}
	out, err := libShell(t, `source "$LIB/common-functions"; mount_dev_pts_options`, nil)
	if err != nil || out != "-o "+string(want) || !strings.Contains(out, "mode=") {
		t.Errorf("mount_dev_pts_options: %q, %v; want -o %q", out, err, want)
	}
}

// mk_build_dir's directories are gone when the hook exits, with the
// hook's own status, mounts below them unmounted first; a hook that
// clears the trap (dracut-ramdisk, once its ramdisk is built) keeps them.
func TestMkBuildDirCleanup(t *testing.T) {
	tmp := t.TempDir()
	script := `source "$LIB/common-functions"; mk_build_dir
echo "$TMP_BUILD_DIR $TMP_IMAGE_DIR $TMP_HOOKS_PATH" >"$1/dirs"
mkdir -p "$TMP_BUILD_DIR/mnt/a/b"; touch "$TMP_BUILD_DIR/mnt/a/b/c" "$TMP_IMAGE_DIR/i"
if [ "$2" = keep ]; then trap EXIT; fi
exit $3`
	for _, tc := range []struct {
		how    string
		status string
	}{{"fail", "3"}, {"succeed", "0"}, {"keep", "0"}} {
		t.Run(tc.how, func(t *testing.T) {
			out, err := libShell(t, script, []string{"TMP_DIR=" + tmp}, tmp, tc.how, tc.status)
			if code := exitCode(err); code != tc.status {
				t.Fatalf("exit status %s, want %s: %s", code, tc.status, out)
			}
			data, err := os.ReadFile(filepath.Join(tmp, "dirs"))
			if err != nil {
				t.Fatal(err)
			}
			dirs := strings.Fields(string(data))
			if len(dirs) != 3 || filepath.Dir(dirs[0]) != tmp || filepath.Dir(dirs[1]) != tmp || dirs[2] != dirs[0]+"/hooks" {
				t.Fatalf("dirs %q, want two under %s and hooks in the first", dirs, tmp)
			}
			for _, d := range dirs[:2] {
				_, err := os.Stat(d)
				if kept := err == nil; kept != (tc.how == "keep") {
					t.Errorf("%s: kept %v after the hook exits to %s", d, kept, tc.how)
				}
				os.RemoveAll(d)
			}
		})
	}
}

// cleanup removes only what mk_build_dir made: outside the chroot
// TMP_BUILD_DIR starts as the build's own work directory, which a hook
// that traps cleanup without mk_build_dir must not lose.
func TestCleanupWithoutMkBuildDir(t *testing.T) {
	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "kept"), nil, 0o644)
	out, err := libShell(t, `source "$LIB/common-functions"; trap cleanup EXIT; true`,
		[]string{"TMP_BUILD_DIR=" + work, "TMP_IMAGE_DIR=" + work})
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(work, "kept")); err != nil {
		t.Errorf("cleanup removed the build's own work directory: %v", err)
	}
}

func exitCode(err error) string {
	if err == nil {
		return "0"
	}
	if e, ok := err.(*exec.ExitError); ok {
		return strings.TrimPrefix(e.String(), "exit status ")
	}
	return err.Error()
}

// run_d runs a phase's directory with the dib-run-parts at the top of the
// hooks' tree, as dibvm lays it out, and nothing for a phase without one.
// The dib-run-parts here is a stand-in that says what it was given.
func TestRunD(t *testing.T) {
	hooks := t.TempDir()
	writeFiles(t, hooks, map[string]string{
		"dib-run-parts!":          "#!/bin/sh\necho \"ran $1\"\n[ \"${FAIL:-}\" != 1 ]\n",
		"ramdisk-install.d/10-x!": "",
	})
	out, err := libShell(t, `source "$LIB/common-functions"; run_d ramdisk-install; run_d nothing; run_d ramdisk-install "$1/log"; cat "$1/log"`,
		[]string{"TMP_HOOKS_PATH=" + hooks, "break=before-ramdisk-install"}, hooks)
	dir := hooks + "/ramdisk-install.d"
	want := "break=before-ramdisk-install: dibvm stops only at its own phases' breakpoints; before-ramdisk-install is in a hook, so the build goes on\n" +
		"Running hooks from " + dir + "\nran " + dir + "\n"
	want = want + want + "ran " + dir + "\n"
	if err != nil || out != want {
		t.Errorf("got %q, %v; want %q", out, err, want)
	}
	// A failing phase fails run_d, and so the hook, with or without a log.
	for _, script := range []string{`run_d ramdisk-install`, `run_d ramdisk-install "$1/log"`} {
		out, err = libShell(t, `source "$LIB/common-functions"; `+script+`; echo after`, []string{"TMP_HOOKS_PATH=" + hooks, "FAIL=1"}, hooks)
		if err == nil || strings.Contains(out, "after") {
			t.Errorf("%s: a failed phase went on: %q", script, out)
		}
	}
	// Without a dib-run-parts anywhere, run_d says what to do.
	os.Remove(filepath.Join(hooks, "dib-run-parts"))
	out, err = libShell(t, `source "$LIB/common-functions"; run_d ramdisk-install`, []string{"TMP_HOOKS_PATH=" + hooks, "PATH=/nonexistent"})
	if err == nil || !strings.Contains(out, "no dib-run-parts: set DIB_RUN_PARTS") {
		t.Errorf("without dib-run-parts: got %q, %v", out, err)
	}
}
