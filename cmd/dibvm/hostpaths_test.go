package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeTree makes files from a map of path → content under dir; a value
// that starts with "->" makes a symlink to the rest.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, full)
		} else {
			err = os.WriteFile(full, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// A file and a directory that DIB settings name (DIB_APT_CONF, relative
// to the caller's directory as DIB takes it, and DIB_ADD_APT_KEYS), and
// a file and a directory that the user's own variables name and
// --host-path lends, reach the hooks outside the chroot read-only, with
// nothing beside them; the chroot's hooks get what those passed on.
func TestCreateLendsHostPaths(t *testing.T) {
	needVM(t)
	host := t.TempDir()
	writeTree(t, host, map[string]string{
		"conf/apt.conf":        "APT::Get::Assume-Yes true;\n",
		"conf/secret":          "not lent",
		"keys/a.gpg":           "key a",
		"keys/sub/b.gpg":       "key b",
		"keys/b-link":          "->sub/b.gpg",
		"mine/my.conf":         "mine=1",
		"mine/dir/top":         "top",
		"mine/dir/sub/b.conf":  "b=2",
		"mine/dir/sub/.hidden": "h",
	})
	out := filepath.Join(t.TempDir(), "img")
	_, env := runDir(t)
	env = append(env, "ELEMENTS_PATH="+testElements(t),
		"DIB_APT_CONF=./conf/apt.conf", "DIB_ADD_APT_KEYS=keys",
		"MY_CONFIG_FILE="+filepath.Join(host, "mine/my.conf"), "MY_CONFIG_DIR="+filepath.Join(host, "mine/dir"),
		"HOST_ONLY_FILE="+filepath.Join(host, "conf/secret"))
	start := time.Now()
	r := runIn(t, host, env, "create", "-n", "-t", "tar", "-o", out,
		"--host-path", "MY_CONFIG_FILE", "--host-path", "MY_CONFIG_DIR", "tiny-os", "host-paths-reader")
	t.Logf("build took %s", time.Since(start).Round(time.Second))
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, tail(r.stderr, 30))
	}
	files := readTar(t, out+".tar")
	for name, want := range map[string]string{
		"apt-conf":             "APT::Get::Assume-Yes true;\n",
		"my-config-file":       "mine=1",
		"add-apt-keys":         "a.gpg: key a\nb-link -> sub/b.gpg\nsub/\nsub/b.gpg: key b\n",
		"my-config-dir":        "sub/\nsub/.hidden: h\nsub/b.conf: b=2\ntop: top\n",
		"write-file":           "refused\nrefused\n",
		"write-dir":            "refused\nrefused\n",
		"beside-apt-conf":      "apt.conf\n",
		"host-secret":          "absent\n",
		"chroot-apt-conf":      "APT::Get::Assume-Yes true;\n",
		"chroot-my-config-dir": "b=2",
		"chroot-lent-path":     "absent\n",
	} {
		if got := files["etc/host-paths/"+name]; got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

// What a setting or --host-path cannot lend is refused before the VM
// boots, naming the variable and the path, and leaves nothing behind.
func TestCreateRefusesHostPaths(t *testing.T) {
	work := t.TempDir()
	host := t.TempDir()
	writeTree(t, host, map[string]string{
		"apt.conf":   "x",
		"secret":     "s",
		"keys/a.gpg": "a",
		"out/ok":     "ok",
		"out/link":   "->../secret",
		"abs/link":   "->" + filepath.Join(host, "secret"),
	})
	big := filepath.Join(host, "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(513 << 20) // sparse: refused by its size, never read
	f.Close()
	create := func(args ...string) []string {
		return append(append([]string{"create", "-o", "img", "-t", "tar", "-n"}, args...), "tiny-os")
	}
	missing := filepath.Join(host, "nope", "apt.conf")
	runCases(t, work, []cliCase{
		{"a setting naming nothing", create(), []string{"DIB_APT_CONF=" + missing}, 1,
			[]string{"DIB_APT_CONF=" + missing + " (the apt.conf apt-conf installs)", "no such file or directory here"}},
		{"a relative setting naming nothing", create(), []string{"DIB_APT_CONF=./apt.conf"}, 1,
			[]string{"DIB_APT_CONF=./apt.conf", "no such file or directory here"}},
		{"a directory for a file", create(), []string{"DIB_APT_CONF=" + host}, 1,
			[]string{"DIB_APT_CONF=" + host, "is a directory, and the variable names a file"}},
		{"a file for a directory", create(), []string{"DIB_ADD_APT_KEYS=" + filepath.Join(host, "apt.conf")}, 1,
			[]string{"DIB_ADD_APT_KEYS=", "is a file, and the variable names a directory"}},
		{"too large", create("--host-path", "MY_BIG"), []string{"MY_BIG=" + big}, 1,
			[]string{"MY_BIG=" + big + " (lent by --host-path)", "more than the 512 MiB a build may borrow"}},
		{"a link out", create("--host-path", "MY_DIR"), []string{"MY_DIR=" + filepath.Join(host, "out")}, 1,
			[]string{"MY_DIR=" + filepath.Join(host, "out"), "link -> ../secret: the symlink leads outside the directory"}},
		{"an absolute link out", create(), []string{"DIB_ILO_FIRMWARE_PATH=" + filepath.Join(host, "abs")}, 1,
			[]string{"DIB_ILO_FIRMWARE_PATH=", "an absolute symlink leads outside the directory"}},
		{"--host-path of an unset variable", create("--host-path", "MY_UNSET_CONFIG"), nil, 1,
			[]string{"--host-path MY_UNSET_CONFIG (or DIBVM_HOST_PATH): MY_UNSET_CONFIG is not set"}},
		{"DIBVM_HOST_PATH of an unset variable", create(), []string{"DIBVM_HOST_PATH=MY_UNSET_CONFIG"}, 1,
			[]string{"--host-path MY_UNSET_CONFIG (or DIBVM_HOST_PATH): MY_UNSET_CONFIG is not set"}},
		{"--host-path of no variable name", create("--host-path", "MY-CONFIG"), nil, 1,
			[]string{`--host-path "MY-CONFIG"`, "give the name of a variable"}},
	})
}

// A file this user cannot read is refused before the VM boots, naming
// the variable. As root every file is readable, so the case runs as the
// ordinary test user there.
func TestCreateRefusesUnreadableHostPath(t *testing.T) {
	work, err := os.MkdirTemp("", "dibvm-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	os.Chmod(work, 0o755)
	secret := filepath.Join(work, "secret.conf")
	os.WriteFile(secret, []byte("not yours"), 0o000)
	bin := filepath.Join(work, "dibvm")
	copyFile(t, dibvmBin, bin)
	started, env := stubQEMU(t)
	out := filepath.Join(work, "out")
	os.Mkdir(out, 0o777)
	os.Chmod(out, 0o777)
	cmd := exec.Command(bin, "create", "-n", "-t", "tar", "-o", filepath.Join(out, "img"), "tiny-os")
	cmd.Env = append(append(os.Environ(), env...), "ELEMENTS_PATH="+readableElements(t, work), "DIB_APT_CONF="+secret)
	if os.Geteuid() == 0 {
		u := ensureUser(t, "dibvmtest")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = append(cmd.Env, "HOME="+u.HomeDir)
	}
	msg, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 ||
		!strings.Contains(string(msg), "DIB_APT_CONF="+secret+" (the apt.conf apt-conf installs)") || !strings.Contains(string(msg), "permission denied") {
		t.Errorf("an unreadable DIB_APT_CONF: %v\n%s", err, msg)
	}
	if _, err := os.Stat(started); err == nil {
		t.Error("QEMU started")
	}
	if left := listDir(t, out); len(left) > 0 {
		t.Errorf("left %q", left)
	}
}
