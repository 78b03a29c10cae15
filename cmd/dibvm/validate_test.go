package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A command line case: its arguments and variables, the exit status it
// must end with (2: the command line is wrong; 1: what it names is; 0),
// and words the message must hold. An accepted build must get as far as
// starting QEMU, the stub below.
type cliCase struct {
	name string
	args []string
	env  []string
	code int
	want []string
}

// accepted is the code of a build whose command line passes every check:
// it goes on to start QEMU.
const accepted = -1

// stubQEMU is a QEMU that only records that it was started, and the
// variables that make dibvm run it for either architecture.
func stubQEMU(t *testing.T) (started string, env []string) {
	t.Helper()
	dir := t.TempDir()
	started = filepath.Join(dir, "qemu-started")
	fake := filepath.Join(dir, "qemu")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\ntouch "+started+"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return started, []string{"DIBVM_QEMU=" + fake, "DIBVM_QEMU_AMD64=" + fake, "DIBVM_QEMU_ARM64=" + fake,
		"DIBVM_KVM_DEVICE=/nonexistent/kvm"}
}

// runCases runs each case in work (the current directory of dibvm) and
// checks its status and message, that no QEMU started for a refused one,
// and that a refused one left nothing behind: no file in work or in the
// run directory, no temporary directory of dibvm's.
func runCases(t *testing.T, work string, cases []cliCase) {
	t.Helper()
	started, env := stubQEMU(t)
	runtimeDir, runEnv := runDir(t)
	// A temporary directory of dibvm's own, so that what other tests
	// running beside these make in the shared one is not counted.
	tmpDir := t.TempDir()
	env = append(append(env, runEnv...), "ELEMENTS_PATH="+testElements(t), "TMPDIR="+tmpDir)
	before := listDir(t, work)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.code == accepted {
				needVM(t) // it goes on to look up the appliance
			}
			os.Remove(started)
			r := runIn(t, work, append(append([]string{}, env...), c.env...), c.args...)
			_, qemuRan := os.Stat(started)
			switch {
			case c.code == accepted:
				if r.code == 2 || qemuRan != nil {
					t.Errorf("dibvm %q: a legal command line was refused (exit %d, QEMU started: %v):\n%s", c.args, r.code, qemuRan == nil, r.stderr)
				}
			case r.code != c.code:
				t.Errorf("dibvm %q: exit %d, want %d\n%s", c.args, r.code, c.code, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr+r.stdout, w) {
					t.Errorf("dibvm %q: the message does not say %q:\n%s", c.args, w, r.stderr)
				}
			}
			if c.code > 0 {
				if qemuRan == nil {
					t.Errorf("dibvm %q started QEMU: bad input must be refused before the VM boots", c.args)
				}
				if after := listDir(t, work); !slices.Equal(after, before) {
					t.Errorf("dibvm %q left files behind: %q, before %q", c.args, after, before)
				}
				if left := listDir(t, runtimeDir); len(left) > 0 {
					t.Errorf("dibvm %q left run directories: %q", c.args, left)
				}
				if tmp, _ := filepath.Glob(filepath.Join(tmpDir, "dibvm-*")); len(tmp) > 0 {
					t.Errorf("dibvm %q left temporary directories: %q", c.args, tmp)
				}
			}
		})
	}
}

func runIn(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(dibvmBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	err := cmd.Run()
	timer.Stop()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != dir {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	return out
}

// The output and the caches: where the image goes must be a file name in
// a directory that exists and can be written; a cache must be a directory,
// or one that can be made.
func TestCreateOutputPaths(t *testing.T) {
	work := t.TempDir()
	os.Mkdir(filepath.Join(work, "out"), 0o755)
	os.WriteFile(filepath.Join(work, "afile"), []byte("x"), 0o644)
	tiny := []string{"-n", "tiny-os"}
	create := func(args ...string) []string { return append(append([]string{"create"}, args...), tiny...) }
	runCases(t, work, []cliCase{
		{"empty -o", create("-o", "", "-t", "tar"), nil, 2, []string{`-o "": give the image's file name`}},
		{"-o a directory with a slash", create("-o", "out/", "-t", "tar"), nil, 2, []string{"-o out/: names a directory", "-o out/image"}},
		{"-o a directory's name with a slash", create("-o", filepath.Join(work, "out")+"/", "-t", "tar"), nil, 2, []string{"names a directory"}},
		{"-o under a regular file", create("-o", "afile/img", "-t", "tar"), nil, 2, []string{"-o afile/img: afile is not a directory"}},
		{"-o deep under a regular file", create("-o", "afile/a/b/img", "-t", "tar"), nil, 2, []string{"-o afile/a/b/img: afile is not a directory"}},
		{"-t twice the same", create("-o", "out/x", "-t", "qcow2,qcow2"), nil, 2, []string{"-t qcow2,qcow2: names qcow2 twice"}},
		{"-t empty", create("-o", "out/x", "-t", ""), nil, 2, []string{`-t "": give at least one output type`}},
		{"-t only commas", create("-o", "out/x", "-t", ",,"), nil, 2, []string{"give at least one output type"}},
		{"-t unknown", create("-o", "out/x", "-t", "iso9660"), nil, 2, []string{"-t iso9660: this dibvm cannot write that type yet", "qcow2"}},
		{"-t one unknown among known", create("-o", "out/x", "-t", "qcow2,bogus,tar"), nil, 2, []string{"-t bogus:"}},
		{"--image-cache a file", create("-o", "out/x", "-t", "tar", "--image-cache", "afile"), nil, 2, []string{"--image-cache afile (or DIB_IMAGE_CACHE): afile is not a directory"}},
		{"DIB_IMAGE_CACHE a file", create("-o", "out/x", "-t", "tar"), []string{"DIB_IMAGE_CACHE=" + filepath.Join(work, "afile")}, 2, []string{"(or DIB_IMAGE_CACHE)", "is not a directory"}},
		{"--image-cache under a file", create("-o", "out/x", "-t", "tar", "--image-cache", "afile/cache"), nil, 2, []string{"afile is not a directory"}},
		{"--logfile in a missing directory", create("-o", "out/x", "-t", "tar", "--logfile", "nosuch/log"), nil, 2, []string{"--logfile nosuch/log: nosuch is not a directory"}},
		{"--logfile a directory", create("-o", "out/x", "-t", "tar", "--logfile", "out"), nil, 2, []string{"--logfile out: is a directory"}},
		{"all at once", create("-o", "afile/img", "-t", "qcow2,qcow2", "--image-cache", "afile"), nil, 2,
			[]string{"-o afile/img: afile is not a directory", "names qcow2 twice", "--image-cache afile (or DIB_IMAGE_CACHE): afile is not a directory"}},
		{"-o with the type's suffix", create("-o", "out/img.qcow2", "-t", "qcow2", "block-device-mbr"), nil, accepted, nil},
		{"-o in a directory that exists", create("-o", "out/img", "-t", "tar,qcow2", "block-device-mbr"), nil, accepted, nil},
		{"-o beside a directory of that name", create("-o", "out", "-t", "tar"), nil, accepted, nil},
		{"-o in a directory to be made", create("-o", "new/deeper/img", "-t", "tar"), nil, accepted, nil},
		{"--image-cache to be made", create("-o", "out/img", "-t", "tar", "--image-cache", filepath.Join(t.TempDir(), "new", "cache")), nil, accepted, nil},
	})
}

// Where this user cannot write, the output is refused before the VM
// boots. As root every directory is writable, so the case runs as the
// ordinary test user there.
func TestCreateOutputReadOnly(t *testing.T) {
	work, err := os.MkdirTemp("", "dibvm-ro-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	os.Chmod(work, 0o755)
	ro := filepath.Join(work, "ro")
	os.Mkdir(ro, 0o555)
	bin := filepath.Join(work, "dibvm")
	copyFile(t, dibvmBin, bin)
	os.Chmod(bin, 0o755)
	started, env := stubQEMU(t)
	cmd := exec.Command(bin, "create", "-n", "-t", "tar", "-o", filepath.Join(ro, "img"), "tiny-os")
	cmd.Env = append(append(os.Environ(), env...), "ELEMENTS_PATH="+testElements(t))
	if os.Geteuid() == 0 {
		u := ensureUser(t, "dibvmtest")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = append(cmd.Env, "HOME="+u.HomeDir)
		cmd.Env = append(cmd.Env, "ELEMENTS_PATH="+readableElements(t, work))
	}
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "cannot write in "+ro+": permission denied") {
		t.Errorf("-o in a read-only directory: %v\n%s", err, out)
	}
	if _, err := os.Stat(started); err == nil {
		t.Error("QEMU started")
	}
}

// Numbers and values of the flags and of the variables that stand for
// them: all refused with exit status 2, naming the flag (and the
// variable), before anything starts.
func TestCreateFlagValues(t *testing.T) {
	work := t.TempDir()
	foreign := "arm64"
	if runtime.GOARCH == "arm64" {
		foreign = "amd64"
	}
	create := func(args ...string) []string {
		return append(append([]string{"create", "-o", "img", "-t", "tar"}, args...), "-n", "tiny-os")
	}
	unpinned := filepath.Join(work, "unpinned.lock")
	writeFile(t, unpinned, `{"format":"dibvm-lock/1","packages":[{"name":"hello","version":"1","architecture":"all"}]}`)
	writeFile(t, filepath.Join(work, "notes.txt"), "hello\n")
	pinned := filepath.Join(work, "pinned.lock")
	writeFile(t, pinned, `{"format":"dibvm-lock/1","packages":[{"name":"hello","version":"1","architecture":"all","url":"http://deb.debian.org/debian/pool/main/h/hello/hello_1_all.deb","sha256":"`+strings.Repeat("ab", 32)+`"}]}`)
	runCases(t, work, []cliCase{
		{"--cache-to unsigned", create("--cache-to", "127.0.0.1:5000/dibvm/cache"), nil, 2, []string{"--cache-to signs what it pushes: give the OpenSSH private key to sign with as --cache-sign KEYFILE"}},
		{"--cache-from untrusting", create("--cache-from", "127.0.0.1:5000/dibvm/cache"), nil, 2, []string{"--cache-from takes only checkpoints signed by keys you trust: give them as --cache-trust FILE"}},
		{"--cache-from not a repository", create("--cache-from", "Not A Repo", "--cache-trust", "notes.txt"), nil, 2, []string{`--cache-from "Not A Repo": not a repository`}},
		{"--cache-trust no keys", create("--cache-from", "127.0.0.1:5000/dibvm/cache", "--cache-trust", "notes.txt"), nil, 2, []string{"--cache-trust notes.txt (or DIBVM_CACHE_TRUST)"}},
		{"DIBVM_CACHE_SIGN a public key", create("--cache-to", "127.0.0.1:5000/dibvm/cache"), []string{"DIBVM_CACHE_SIGN=" + unpinned}, 2, []string{"--cache-sign " + unpinned + " (or DIBVM_CACHE_SIGN): " + unpinned + ": not an OpenSSH private key"}},
		{"--cache-from without checkpoints", create("--cache-from", "127.0.0.1:5000/dibvm/cache", "--no-checkpoints"), nil, 2, []string{"--cache-from and --cache-to share checkpoints, which --no-checkpoints (or DIB_NO_CHECKPOINTS) turns off"}},
		{"--sign missing", create("--sign", "no-key"), nil, 2, []string{"--sign (or DIBVM_SIGN_KEY): open no-key: no such file"}},
		{"DIBVM_SIGN_KEY a public key", create(), []string{"DIBVM_SIGN_KEY=" + unpinned}, 2, []string{"--sign (or DIBVM_SIGN_KEY): " + unpinned + ": not an OpenSSH private key"}},
		{"--packages-from missing", create("--packages-from", "none.lock"), nil, 2, []string{"--packages-from none.lock: open none.lock: no such file"}},
		{"--packages-from not a lock", create("--packages-from", "notes.txt"), nil, 2, []string{"--packages-from notes.txt: not a lock file"}},
		{"--packages-from unpinned", create("--packages-from", "unpinned.lock"), nil, 2, []string{"--packages-from unpinned.lock: 1 packages have no file to pin them to", "hello 1"}},
		{"--packages-from offline, not cached", create("--packages-from", "pinned.lock", "--offline"), []string{"DIB_IMAGE_CACHE=" + t.TempDir()}, 2, []string{"--packages-from pinned.lock: offline, and the image cache", "lacks 1 of the files it pins: http://deb.debian.org/debian/pool/main/h/hello/hello_1_all.deb"}},
		{"--image-size 0", create("--image-size", "0"), nil, 2, []string{"--image-size 0 (or DIB_IMAGE_SIZE)", "at least 0.1"}},
		{"--image-size NaN", create("--image-size", "NaN"), nil, 2, []string{"--image-size NaN", "give a number of GB"}},
		{"--image-size Inf", create("--image-size", "Inf"), nil, 2, []string{"--image-size +Inf", "give a number of GB"}},
		{"--image-size negative", create("--image-size", "-1"), nil, 2, []string{"--image-size -1", "cannot be negative"}},
		{"--image-size huge", create("--image-size", "1e12"), nil, 2, []string{"--image-size 1e+12", "more than the 4000 GB"}},
		{"--image-size tiny", create("--image-size", "0.0001"), nil, 2, []string{"--image-size 0.0001", "at least 0.1"}},
		{"--image-size words", create("--image-size", "big"), nil, 2, []string{"--image-size", "big"}},
		{"DIB_IMAGE_SIZE 0", create(), []string{"DIB_IMAGE_SIZE=0"}, 2, []string{"(or DIB_IMAGE_SIZE)", "at least 0.1"}},
		{"DIB_IMAGE_SIZE words", create(), []string{"DIB_IMAGE_SIZE=big"}, 2, []string{"DIB_IMAGE_SIZE=big (for --image-size)"}},
		{"--image-extra-size NaN", create("--image-extra-size", "NaN"), nil, 2, []string{"--image-extra-size NaN (or DIB_IMAGE_EXTRA_SIZE)"}},
		{"--image-extra-size negative", create("--image-extra-size", "-2"), nil, 2, []string{"--image-extra-size -2", "cannot be negative"}},
		{"--image-extra-size huge", create("--image-extra-size", "9e9"), nil, 2, []string{"--image-extra-size 9e+09", "more than"}},
		{"--timeout negative", create("--timeout", "-5m"), nil, 2, []string{"--timeout -5m0s", "0 for no limit"}},
		{"--timeout words", create("--timeout", "soon"), nil, 2, []string{"--timeout", "soon"}},
		{"--min-tmpfs negative", create("--min-tmpfs", "-5"), nil, 2, []string{"--min-tmpfs -5: cannot be negative"}},
		{"--cpus 0", create("--cpus", "0"), nil, 2, []string{"--cpus 0: must be at least 1"}},
		{"--cpus 999", create("--cpus", "999"), nil, 2, []string{"--cpus 999: this host has"}},
		{"--cpu-model with options", create("--cpu-model", "max,la57=off"), nil, 2, []string{"--cpu-model max,la57=off (or DIBVM_CPU_MODEL): give auto, max or a CPU model name"}},
		{"DIBVM_CPU_MODEL with a space", create(), []string{"DIBVM_CPU_MODEL=max -smp 8"}, 2, []string{"--cpu-model max -smp 8 (or DIBVM_CPU_MODEL): give auto"}},
		{"--memory small", create("--memory", "100"), nil, 2, []string{"--memory 100: the helper VM needs at least 256 MiB"}},
		{"--memory huge", create("--memory", "99999999"), nil, 2, []string{"--memory 99999999: more MiB than this host has"}},
		{"--boot-timeout 0", create("--boot-timeout", "0s"), nil, 2, []string{"--boot-timeout 0s"}},
		{"--boot-timeout negative", create("--boot-timeout", "-1m"), nil, 2, []string{"--boot-timeout -1m0s"}},
		{"--max-online-resize negative", create("--max-online-resize", "-1"), nil, 2, []string{"--max-online-resize -1 (or MAX_ONLINE_RESIZE)"}},
		{"--mkfs-journal-size negative", create("--mkfs-journal-size", "-1"), nil, 2, []string{"--mkfs-journal-size -1 (or DIB_JOURNAL_SIZE)"}},
		{"DIB_JOURNAL_SIZE words", create(), []string{"DIB_JOURNAL_SIZE=lots"}, 2, []string{"DIB_JOURNAL_SIZE=lots (for --mkfs-journal-size)"}},
		{"--checkpoint-max-age 0", create("--checkpoint-max-age", "0"), nil, 2, []string{"--checkpoint-max-age", "want a duration such as 7d or 36h"}},
		{"--checkpoint-max-age in weeks", create("--checkpoint-max-age", "2w"), nil, 2, []string{"--checkpoint-max-age", "want a duration such as 7d or 36h"}},
		{"--checkpoint-max-age negative days", create("--checkpoint-max-age", "-1d"), nil, 2, []string{"--checkpoint-max-age"}},
		{"--cache-max-size none", create("--cache-max-size", "lots"), nil, 2, []string{"--cache-max-size", "want a size such as 40G"}},
		{"cache prune --checkpoint-max-age", []string{"cache", "prune", "--checkpoint-max-age", "soon"}, nil, 2, []string{"--checkpoint-max-age"}},
		{"cache ls with an argument", []string{"cache", "ls", "all"}, nil, 2, []string{"dibvm cache ls takes no arguments"}},
		{"--scratch-size 0", create("--scratch-size", "0"), nil, 2, []string{"--scratch-size", "want a size such as 40G"}},
		{"--scratch-size tiny", create("--scratch-size", "1K"), nil, 2, []string{"--scratch-size"}},
		{"--scratch-size below the image", create("--scratch-size", "2G", "--image-size", "4"), nil, 2, []string{"--scratch-size 2048M cannot hold a 4 GB image"}},
		{"-p garbage", create("-p", "Bad!"), nil, 2, []string{`-p Bad!: "Bad!" is not a package name`}},
		{"-p one bad in a list", create("-p", "vim,c++ compiler,git"), nil, 2, []string{`"c++ compiler" is not a package name`}},
		{"-p a path", create("-p", "vim/x"), nil, 2, []string{`"vim/x" is not a package name`}},
		{"-p an rpm name with a version", create("-p", "NetworkManager=1.2"), nil, 2, []string{`"NetworkManager=1.2" is not a package name`}},
		{"--qemu-img-options unknown", create("--qemu-img-options", "bogus=1"), nil, 2, []string{"--qemu-img-options bogus=1: qemu-img refuses them for qcow2", "bogus"}},
		{"--qemu-img-options bad value", create("--qemu-img-options", "compat=9"), nil, 2, []string{"--qemu-img-options compat=9"}},
		{"--accel unknown", create("--accel", "foo"), nil, 2, []string{`accelerator "foo" (--accel or DIBVM_ACCEL)`}},
		{"DIBVM_ACCEL unknown", create(), []string{"DIBVM_ACCEL=bogus"}, 2, []string{`accelerator "bogus" (--accel or DIBVM_ACCEL)`}},
		{"--accel hvf off macOS", create("--accel", "hvf"), nil, 2, []string{"--accel hvf (or DIBVM_ACCEL): not available here"}},
		{"--accel kvm without the device", create("--accel", "kvm"), nil, 2, []string{"--accel kvm (or DIBVM_ACCEL): not available here", "/nonexistent/kvm"}},
		{"--accel kvm for a foreign image", create("-a", foreign, "--accel", "kvm"), []string{"DIBVM_KVM_DEVICE=/dev/null"}, 2, []string{"the helper VM is " + foreign}},
		{"--network unknown", create("--network", "wifi"), nil, 2, []string{`--network "wifi": use nat or none`}},
		{"--helper-tools unknown", create("--helper-tools", "rpm,yum"), nil, 2, []string{`--helper-tools rpm,yum: no helper tools layer "yum": dibvm has container, rpm`}},
		{"DIBVM_HELPER_TOOLS unknown", create(), []string{"DIBVM_HELPER_TOOLS=apk"}, 2, []string{`DIBVM_HELPER_TOOLS=apk (for --helper-tools): no helper tools layer "apk"`}},
		{"--allow-net garbage", create("--allow-net", "not a host!"), nil, 2, []string{"--allow-net"}},
		{"-a unknown", create("-a", "sparc"), nil, 2, []string{"-a sparc"}},
		{"ARCH unknown", create(), []string{"ARCH=sparc"}, 2, []string{"-a sparc"}},
		{"DIB_CHECKSUM unknown", create(), []string{"DIB_CHECKSUM=sha1"}, 2, []string{"DIB_CHECKSUM=sha1: want 1, or md5 and/or sha256"}},
		{"--install-type unknown", create("--install-type", "banana"), nil, 1, []string{"--install-type banana (or DIB_DEFAULT_INSTALLTYPE): no element installs that way; the types here are package, source"}},
		{"DIB_DEFAULT_INSTALLTYPE unknown", create(), []string{"DIB_DEFAULT_INSTALLTYPE=banana"}, 1, []string{"(or DIB_DEFAULT_INSTALLTYPE)"}},
		{"legal: --install-type package", create("--install-type", "package"), nil, accepted, nil},
		{"--mirror not a URL", create("--mirror", "not a url"), nil, 2, []string{`--mirror "not a url": give an http:// or https:// URL`}},
		{"--mirror without a host", create("--mirror", "http:///debian"), nil, 2, []string{`--mirror "http:///debian": names no host`}},
		{"DIBVM_MIRROR ftp", create(), []string{"DIBVM_MIRROR=ftp://bogus/debian"}, 2, []string{"DIBVM_MIRROR=ftp://bogus/debian (for --mirror): give an http:// or https:// URL"}},
		{"DIB_DISTRIBUTION_MIRROR ftp", create(), []string{"DIB_DISTRIBUTION_MIRROR=ftp://bogus"}, 2, []string{"DIB_DISTRIBUTION_MIRROR=ftp://bogus: give an http:// or https:// URL"}},
		{"DIB_DISTRIBUTION_MIRROR not a URL", create(), []string{"DIB_DISTRIBUTION_MIRROR=deb.debian.org/debian"}, 2, []string{"DIB_DISTRIBUTION_MIRROR=deb.debian.org/debian: give an http:// or https:// URL"}},
		{"DIB_DEBIAN_DISTRIBUTION_MIRROR ftp", create(), []string{"DIB_DEBIAN_DISTRIBUTION_MIRROR=ftp://bogus"}, 2, []string{"DIB_DEBIAN_DISTRIBUTION_MIRROR=ftp://bogus"}},
		{"DIB_DEBIAN_SECURITY_MIRROR without a host", create(), []string{"DIB_DEBIAN_SECURITY_MIRROR=https://"}, 2, []string{"DIB_DEBIAN_SECURITY_MIRROR=https://: names no host"}},
		{"several at once", create("--cpus", "0", "--memory", "1", "--image-size", "NaN"), nil, 2,
			[]string{"--cpus 0", "--memory 1", "--image-size NaN"}},
		{"legal: sizes and packages", create("--image-size", "2.5", "-p", "vim,libc6=2.41-12,g++", "--timeout", "0"), nil, accepted, nil},
		{"legal: qemu-img options", create("--qemu-img-options", "compat=0.10"), nil, accepted, nil},
		{"legal: --ramdisk-element", create("--ramdisk-element", "dracut-ramdisk"), nil, accepted, nil},
	})
}

// The command line itself: what is missing is named, not counted; a
// flag dibvm does not know points at the help; help is not an error.
func TestCommandLineUsage(t *testing.T) {
	work := t.TempDir()
	// Where a bad mirror, not refused, would build an appliance.
	cache := "DIBVM_CACHE_DIR=" + t.TempDir()
	runCases(t, work, []cliCase{
		{"create without elements", []string{"create"}, nil, 2, []string{"give at least one ELEMENT: dibvm create [flags] ELEMENT..."}},
		{"disk-image-create flags only", []string{"create", "-o", "img"}, nil, 2, []string{"give at least one ELEMENT"}},
		{"run without a command", []string{"run"}, nil, 2, []string{"give a COMMAND after --"}},
		{"run with -- alone", []string{"run", "--"}, nil, 2, []string{"give a COMMAND after --"}},
		{"element-info without elements", []string{"element-info"}, nil, 2, []string{"give at least one ELEMENT"}},
		{"an unknown flag", []string{"create", "--bogus", "tiny-os"}, nil, 2, []string{"unknown flag: --bogus (see dibvm create --help)"}},
		{"an unknown shorthand", []string{"create", "-Q", "tiny-os"}, nil, 2, []string{"unknown shorthand flag: 'Q'", "see dibvm create --help"}},
		{"a flag without its value", []string{"create", "tiny-os", "-o"}, nil, 2, []string{"flag needs an argument", "-o"}},
		{"a number that is not", []string{"create", "--cpus", "two", "tiny-os"}, nil, 2, []string{"--cpus", "two"}},
		{"appliance info with arguments", []string{"appliance", "info", "extra"}, nil, 2, []string{"dibvm appliance info takes no arguments"}},
		{"run with an unknown --arch", []string{"run", "--arch", "mips", "--", "true"}, nil, 2, []string{"--arch mips: the helper VM can be amd64 (x86_64) or arm64 (aarch64)"}},
		{"an unknown command", []string{"frob"}, nil, 2, []string{`dibvm: unknown command "frob"; the commands are appliance, boot, build, cache,`}},
		{"a misspelt command", []string{"apliance"}, nil, 2, []string{"did you mean appliance?"}},
		{"appliance with an unknown command", []string{"appliance", "frob"}, nil, 2, []string{`dibvm appliance: unknown command "frob"; the commands are build, info, path (see dibvm appliance --help)`}},
		{"cache with an unknown command", []string{"cache", "frob"}, nil, 2, []string{`dibvm cache: unknown command "frob"; the commands are du, ls, prune`}},
		{"completion with an unknown shell", []string{"completion", "frob"}, nil, 2, []string{`dibvm completion: unknown command "frob"; the commands are bash,`}},
		{"help on an unknown command", []string{"help", "appliance", "frob"}, nil, 2, []string{`dibvm appliance: unknown command "frob"`}},
		{"run with an empty command", []string{"run", "--", ""}, nil, 2, []string{`the COMMAND after -- is "": give a program to run`}},
		{"run with a blank command", []string{"run", "--", " \t", "x"}, nil, 2, []string{`the COMMAND after -- is " \t"`}},
		{"run with an unknown --helper-tools", []string{"run", "--helper-tools", "yum", "--", "true"}, []string{cache}, 2, []string{`--helper-tools yum: no helper tools layer "yum": dibvm has container, rpm`}},
		{"appliance path with an unknown --helper-tools", []string{"appliance", "path", "--helper-tools", "yum"}, []string{cache}, 2, []string{`--helper-tools yum: no helper tools layer "yum"`}},
		{"run with a bad --mirror", []string{"run", "--mirror", "ftp://bogus", "--", "true"}, []string{cache}, 2, []string{`--mirror "ftp://bogus": give an http:// or https:// URL`}},
		{"appliance info with a bad --mirror", []string{"appliance", "info", "--mirror", "not a url"}, []string{cache}, 2, []string{`--mirror "not a url": give an http:// or https:// URL`}},
		{"appliance build with a bad DIBVM_MIRROR", []string{"appliance", "build"}, []string{cache, "DIBVM_MIRROR=ftp://bogus"}, 2, []string{"DIBVM_MIRROR=ftp://bogus (for --mirror)"}},
		{"cache ls with a bad DIBVM_MIRROR", []string{"cache", "ls"}, []string{"DIBVM_MIRROR=http://"}, 2, []string{"DIBVM_MIRROR=http:// (for --mirror): names no host"}},
		{"pkg-map with an unknown flag", []string{"pkg-map", "--element", "x", "--bogus", "vim"}, nil, 2, []string{"pkg-map: error: unrecognized arguments: --bogus"}},
		{"legal: appliance alone", []string{"appliance"}, nil, 0, []string{"Available Commands"}},
		{"legal: create --help", []string{"create", "--help"}, nil, 0, []string{"--image-size"}},
		{"legal: pkg-map --help", []string{"pkg-map", "--help"}, nil, 0, []string{"usage: pkg-map"}},
		{"legal: create --version", []string{"create", "--version"}, nil, 0, nil},
	})
}

// Disk layouts, DIB_BLOCK_DEVICE_CONFIG's or an element's: what DIB's
// block device code refuses, and what would make an image that does not
// boot, is refused on the host (exit status 1: the content is wrong),
// with where it is.
func TestCreateLayouts(t *testing.T) {
	work := t.TempDir()
	layout := func(partitions string) string {
		return "DIB_BLOCK_DEVICE_CONFIG=- local_loop: {name: image0}\n- partitioning:\n    base: image0\n    label: gpt\n    partitions:\n" + partitions
	}
	root := func(extra string) string {
		return "      - {name: root, size: 100%, mkfs: {type: ext4" + extra + ", mount: {mount_point: /}}}\n"
	}
	create := func(args ...string) []string {
		return append(append([]string{"create", "-o", "img", "-t", "raw"}, args...), "-n", "tiny-os")
	}
	runCases(t, work, []cliCase{
		{"size 0", create(), []string{layout("      - {name: root, size: 0, mkfs: {mount: {mount_point: /}}}\n")}, 1,
			[]string{"DIB_BLOCK_DEVICE_CONFIG: partitioning: partition root: size:", "a partition needs a size above 0"}},
		{"size beyond int64", create(), []string{layout("      - {name: root, size: 99999999999TiB, mkfs: {mount: {mount_point: /}}}\n")}, 1,
			[]string{"more than any disk"}},
		{"size below a sector", create(), []string{layout("      - {name: root, size: 100, mkfs: {mount: {mount_point: /}}}\n")}, 1,
			[]string{"less than a 512-byte sector"}},
		{"size above 100%", create(), []string{layout("      - {name: root, size: 150%, mkfs: {mount: {mount_point: /}}}\n")}, 1,
			[]string{`"150%": a percentage is between 0 and 100`}},
		{"a partition bigger than --image-size", create("--image-size", "1"), []string{layout("      - {name: data, size: 2GiB}\n" + root(""))}, 1,
			[]string{"with --image-size 1 (or DIB_IMAGE_SIZE): partition data on a 1024 MiB image", "raise DIB_IMAGE_SIZE"}},
		{"fixed partitions beyond --image-size", create("--image-size", "1.5"), []string{layout("      - {name: a, size: 1GiB}\n      - {name: b, size: 1GiB}\n" + root(""))}, 1,
			[]string{"partition b on a 1536 MiB image"}},
		{"two partitions of one name", create(), []string{layout("      - {name: root, size: 1GiB}\n" + root(""))}, 1,
			[]string{"partition root: the name is used twice"}},
		{"two filesystems at /", create(), []string{layout("      - {name: a, size: 1GiB, mkfs: {mount: {mount_point: /}}}\n" + root(""))}, 1,
			[]string{"partition root: mount_point / is partition a's too", "exactly one filesystem mounted at /, found 2"}},
		{"no filesystem at /", create(), []string{layout("      - {name: data, size: 100%, mkfs: {mount: {mount_point: /srv}}}\n")}, 1,
			[]string{"exactly one filesystem mounted at /, found 0"}},
		{"a relative mount point", create(), []string{layout("      - {name: data, size: 1GiB, mkfs: {mount: {mount_point: srv}}}\n" + root(""))}, 1,
			[]string{`partition data: mount_point "srv" is not an absolute path`}},
		{"an ext4 label too long", create(), []string{layout(root(", label: seventeen-chars-x"))}, 1,
			[]string{`partition root: label "seventeen-chars-x" is 17 characters; ext4 takes at most 16`}},
		{"an xfs label too long", create(), []string{layout("      - {name: root, size: 100%, mkfs: {type: xfs, label: thirteen-char, mount: {mount_point: /}}}\n")}, 1,
			[]string{"xfs takes at most 12"}},
		{"a vfat label too long", create(), []string{layout("      - {name: esp, size: 100MiB, mkfs: {type: vfat, label: TWELVECHARSS, mount: {mount_point: /boot/efi}}}\n" + root(""))}, 1,
			[]string{"vfat takes at most 11"}},
		{"--root-label too long", create("--root-label", "a-root-label-far-too-long"), []string{layout(root(""))}, 1,
			[]string{"--root-label (or ROOT_LABEL, DIB_ROOT_LABEL): the root filesystem's label \"a-root-label-far-too-long\"", "ext4 takes at most 16"}},
		{"DIB's root label on xfs", create("--root-label", "cloudimg-rootfs"), []string{"FS_TYPE=xfs", layout("      - {name: root, size: 100%, mkfs: {mount: {mount_point: /}}}\n")}, 1,
			[]string{"xfs takes at most 12"}},
		{"an unknown filesystem", create(), []string{layout("      - {name: root, size: 100%, mkfs: {type: btrfs, mount: {mount_point: /}}}\n")}, 1,
			[]string{"mkfs type \"btrfs\" is not supported"}},
		{"an unknown flag", create(), []string{layout("      - {name: root, flags: [bootable], size: 100%, mkfs: {mount: {mount_point: /}}}\n")}, 1,
			[]string{`partition root: unknown flag "bootable" (boot, primary)`}},
		{"no local_loop", create(), []string{"DIB_BLOCK_DEVICE_CONFIG=- partitioning: {base: image0, label: mbr, partitions: [{name: r, size: 100%}]}"}, 1,
			[]string{`DIB_BLOCK_DEVICE_CONFIG: partitioning: no local_loop named "image0" comes before it`}},
		{"LVM without volumes", create(), []string{"DIB_BLOCK_DEVICE_CONFIG=- lvm: {name: x}"}, 1,
			[]string{"DIB_BLOCK_DEVICE_CONFIG: lvm: needs pvs, vgs and lvs"}},
		{"LVM: every problem on its own line", create(), []string{"DIB_BLOCK_DEVICE_CONFIG=- local_loop: {name: image0}\n- partitioning:\n    base: image0\n    label: gpt\n    partitions:\n" +
			"      - {name: p, size: 100%}\n- lvm:\n    pvs: [{name: pv, base: p}]\n    vgs: [{name: vg, base: [pv0]}]\n    lvs: [{name: lv, base: vg1, size: 1GiB}]\n" +
			"- mkfs: {base: lv, mount: {mount_point: /}}\n"}, 1,
			[]string{`dibvm: DIB_BLOCK_DEVICE_CONFIG: lvm: vg vg: base "pv0" names no pv`, "\nDIB_BLOCK_DEVICE_CONFIG: lvm: lv lv: base \"vg1\" names no vg"}},
		{"an md raid node", create(), []string{"DIB_BLOCK_DEVICE_CONFIG=- mdraid: {name: x}"}, 1,
			[]string{"mdraid: dibvm does not support this block device node yet"}},
		{"not YAML", create(), []string{"DIB_BLOCK_DEVICE_CONFIG=[unclosed"}, 1,
			[]string{"DIB_BLOCK_DEVICE_CONFIG: does not parse as a list of block device nodes"}},
		{"five primary partitions", create(), []string{"DIB_BLOCK_DEVICE_CONFIG=- local_loop: {name: image0}\n- partitioning:\n    base: image0\n    label: mbr\n    partitions:\n" +
			strings.Repeat("      - {name: p, flags: [primary], size: 10MiB}\n", 4) + "      - {name: root, flags: [primary], size: 100%, mkfs: {mount: {mount_point: /}}}\n"}, 1,
			[]string{"5 primary partitions: an MBR holds at most 4"}},
		{"a config file that is not there", create(), []string{"DIB_BLOCK_DEVICE_CONFIG=file:///nonexistent/layout.yaml"}, 1,
			[]string{"DIB_BLOCK_DEVICE_CONFIG: open /nonexistent/layout.yaml: no such file or directory"}},
		{"every problem on its own line", create(), []string{layout("      - {name: data, size: 1GiB, mkfs: {label: seventeen-chars-x, mount: {mount_point: srv}}}\n" + root(", label: another-seventeen"))}, 1,
			[]string{`dibvm: DIB_BLOCK_DEVICE_CONFIG: partition data: label "seventeen-chars-x"`,
				"\nDIB_BLOCK_DEVICE_CONFIG: partition data: mount_point \"srv\"", "\nDIB_BLOCK_DEVICE_CONFIG: partition root: label \"another-seventeen\""}},
		{"legal: labels at their limits", create(), []string{layout("      - {name: esp, size: 100MiB, mkfs: {type: vfat, label: ELEVENCHARS, mount: {mount_point: /boot/efi}}}\n" + root(", label: sixteen-chars-ok"))}, accepted, nil},
		{"legal: partitions within --image-size", create("--image-size", "3"), []string{layout("      - {name: data, size: 2GiB}\n" + root(""))}, accepted, nil},
		{"legal: a misspelt key, named", create(), []string{layout("      - {name: root, sise: 2GiB, size: 100%, mkfs: {mount: {mount_point: /}}}\n")}, accepted,
			[]string{"warning: DIB_BLOCK_DEVICE_CONFIG: partition root: sise is no block device setting, and is ignored (as DIB does)"}},
	})
}

// readableElements copies the test elements into dir, where an ordinary
// user can read them (a test's temporary directories are private to
// root), and returns their directory.
func readableElements(t *testing.T, dir string) string {
	t.Helper()
	elems := filepath.Join(dir, "elements")
	if err := os.CopyFS(elems, os.DirFS(testElements(t))); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(elems, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	return elems
}

// writeElements makes elements from a map of path → content under a new
// directory and returns it, for ELEMENTS_PATH. Files under a phase
// directory are made executable. Nothing here is ever run on the host:
// the checks only parse them.
func writeElements(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if strings.HasSuffix(p, "/") {
			os.MkdirAll(full, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(full), 0o755)
		mode := os.FileMode(0o644)
		if strings.Contains(p, ".d/") && !strings.Contains(p, "environment.d/") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Element files: what the host can read without running anything
// (package-installs, pkg-map, the shell's syntax) is checked by create
// as by element-info --check, every problem at once (exit status 1: the
// content is wrong), each naming its element and file.
func TestCreateElementFiles(t *testing.T) {
	work := t.TempDir()
	base := map[string]string{"os/element-provides": "operating-system\n", "os/root.d/10-root": "#!/bin/bash\ntrue\n"}
	with := func(files map[string]string) string {
		all := map[string]string{}
		for k, v := range base {
			all[k] = v
		}
		for k, v := range files {
			all[k] = v
		}
		return "ELEMENTS_PATH=" + writeElements(t, all)
	}
	create := []string{"create", "-o", "img", "-t", "tar", "-n", "os", "mine"}
	check := []string{"element-info", "--check", "os", "mine"}
	badEnv := with(map[string]string{"mine/environment.d/10-settings": "export A=1\nif [ \"$A\" = 1 ]; then\n  export B=2\n"})
	badHook := with(map[string]string{"mine/install.d/50-broken": "#!/bin/bash\nfor x in a b; do\n  echo $x\ndone done\n"})
	badSh := with(map[string]string{"mine/post-install.d/50-sh": "#!/bin/sh\ncase $1 in\n  a) echo a ;;\n"})
	badEnvHash := with(map[string]string{"mine/environment.d/10-x.bash": "f() {\n"})
	python := with(map[string]string{"mine/install.d/50-python": "#!/usr/bin/env python3\nif True:\n    print('fine'\n"})
	badYAML := with(map[string]string{"mine/package-installs.yaml": "vim: [unclosed\n"})
	badShape := with(map[string]string{"mine/package-installs.yaml": "- vim\n- git\n"})
	badMap := with(map[string]string{"mine/pkg-map": "{\"family\": {\"debian\": {\"vim\": \"vim\"}},}\n"})
	hookDir := with(map[string]string{"mine/install.d/50-not-a-hook/": "", "mine/install.d/50-not-a-hook/x": "#!/bin/bash\ntrue\n"})
	twoBad := with(map[string]string{"mine/environment.d/10-a": "if\n", "mine/pkg-map": "not json"})
	whenAssigned := with(map[string]string{"mine/environment.d/10-kernel": "export MY_KERNEL=${MY_KERNEL:-linux-image-amd64}\n",
		"mine/package-installs.yaml": "linux-image-generic:\n  when: MY_KERNEL = linux-image-generic\n"})
	runCases(t, work, []cliCase{
		{"create: an environment.d file that does not parse", create, []string{badEnv}, 1,
			[]string{"element mine", "environment.d/10-settings is not valid shell", "syntax error"}},
		{"create: a bash hook that does not parse", create, []string{badHook}, 1,
			[]string{"element mine", "install.d/50-broken is not valid shell", "syntax error near unexpected token"}},
		{"create: an sh hook that does not parse", create, []string{badSh}, 1,
			[]string{"post-install.d/50-sh is not valid shell"}},
		{"create: a .bash environment file that does not parse", create, []string{badEnvHash}, 1,
			[]string{"environment.d/10-x.bash is not valid shell"}},
		{"create: package-installs that is not YAML", create, []string{badYAML}, 1,
			[]string{"mine", "package-installs.yaml"}},
		{"create: package-installs that is a list", create, []string{badShape}, 1,
			[]string{"mine", "package-installs.yaml"}},
		{"create: a pkg-map that is not JSON", create, []string{badMap}, 1,
			[]string{"element mine (", "pkg-map: not a valid pkg-map"}},
		{"create: two problems, both said", create, []string{twoBad}, 1,
			[]string{"environment.d/10-a is not valid shell", "pkg-map: not a valid pkg-map"}},
		{"element-info --check: an environment.d file that does not parse", check, []string{badEnv}, 1,
			[]string{"environment.d/10-settings is not valid shell"}},
		{"element-info --check: a bash hook that does not parse", check, []string{badHook}, 1,
			[]string{"install.d/50-broken is not valid shell"}},
		{"element-info --check: a pkg-map that is not JSON", check, []string{badMap}, 1,
			[]string{"pkg-map: not a valid pkg-map"}},
		{"element-info --check: a hook that is a directory, named", check, []string{hookDir}, 0,
			[]string{"warning: element mine: install.d/50-not-a-hook is a directory, not a hook: it never runs"}},
		{"element-info --check: a when: variable an environment.d file sets", check, []string{whenAssigned}, 0, nil},
		{"element-info --check: a Python hook is not shell", check, []string{python}, 0, nil},
		{"legal: create with a hook that is a directory, named", create, []string{hookDir}, accepted,
			[]string{"install.d/50-not-a-hook is a directory, not a hook"}},
		{"legal: create with a Python hook", create, []string{python}, accepted, nil},
	})
}

// DIB's own behaviour at the edges of its element format: an empty
// ELEMENTS_PATH entry and an operating system given twice are errors in
// DIB; element-deps lines are stripped as Python strips them; --env
// names elements by their real paths; overriding built-in elements is
// said once.
func TestCreateDIBEdges(t *testing.T) {
	work := t.TempDir()
	mine := writeElements(t, map[string]string{
		"os/element-provides": "operating-system\n", "os/root.d/10-root": "#!/bin/bash\ntrue\n",
		"with-cr/element-deps": "os\r\n\x1f\n",
		"base/README.rst":      "an element that shadows the built-in base\n",
		"dpkg/README.rst":      "and dpkg\n",
	})
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(mine, link); err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(mine)
	tiny := "ELEMENTS_PATH=" + mine
	runCases(t, work, []cliCase{
		{"an empty ELEMENTS_PATH entry", []string{"create", "-o", "img", "-t", "tar", "-n", "os"}, []string{"ELEMENTS_PATH=" + mine + "::" + mine}, 1,
			[]string{"has an empty entry"}},
		{"ELEMENTS_PATH ending in a colon", []string{"create", "-o", "img", "-t", "tar", "-n", "os"}, []string{"ELEMENTS_PATH=" + mine + ":"}, 1,
			[]string{"has an empty entry"}},
		{"an ELEMENTS_PATH entry that is no directory", []string{"create", "-o", "img", "-t", "tar", "-n", "os"}, []string{"ELEMENTS_PATH=/nonexistent/elements"}, 1,
			[]string{`ELEMENTS_PATH entry "/nonexistent/elements" is not a directory`}},
		{"the operating system twice", []string{"create", "-o", "img", "-t", "tar", "-n", "os", "os"}, []string{tiny}, 1,
			[]string{"element os is given twice, and it provides operating-system"}},
		{"two operating systems", []string{"create", "-o", "img", "-t", "tar", "-n", "os", "debian-minimal"}, []string{tiny}, 1,
			[]string{"operating-system is provided by both"}},
		{"no operating system", []string{"create", "-o", "img", "-t", "tar", "-n", "dpkg"}, []string{tiny}, 1,
			[]string{"no element provides operating-system"}},
		{"an element name with a control character", []string{"create", "-o", "img", "-t", "tar", "-n", "os", "bad\x1bname"}, []string{tiny}, 1,
			[]string{"is not an element name"}},
		{"element-info: deps stripped as Python strips them", []string{"element-info", "with-cr"}, []string{tiny}, 0,
			[]string{"os with-cr\n"}},
		{"element-info --env: real paths", []string{"element-info", "--env", "os"}, []string{"ELEMENTS_PATH=" + link}, 0,
			[]string{"[os]=" + filepath.Join(real, "os")}},
		{"element-info: built-in overrides said once", []string{"element-info", "os", "base", "dpkg"}, []string{tiny}, 0,
			[]string{"warning: ELEMENTS_PATH's elements base, dpkg override the built-in ones of the same name\n"}},
	})
}
