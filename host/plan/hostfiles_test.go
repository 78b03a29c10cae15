package plan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/hostpath"
)

func lendPlan(env map[string]string, hostPaths ...string) *Plan {
	return &Plan{Spec: &api.Spec{Env: env}, Lender: hostpath.NewLender(), Options: Options{HostPaths: hostPaths}}
}

// Settings that name a path on the host lend it to the build: the
// variable then names the copy in the guest, and the input disk holds
// it. One that names nothing is refused with the variable in the error.
func TestLendHostPaths(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	os.WriteFile(keys, []byte("ssh-ed25519 AAAA test\n"), 0o600)
	conf := filepath.Join(dir, "my.conf")
	os.WriteFile(conf, []byte("mine"), 0o600)
	a, b := filepath.Join(dir, "a.repo"), filepath.Join(dir, "b.repo")
	os.WriteFile(a, []byte("[a]"), 0o600)
	os.WriteFile(b, []byte("[b]"), 0o600)

	p := lendPlan(map[string]string{
		"DIB_DEV_USER_AUTHORIZED_KEYS": keys, "DIB_ADD_APT_KEYS": dir, "DIB_YUM_REPO_CONF": a + " " + b,
		"DIB_RELEASE": "trixie", "DIB_DEBIAN_KEYRING": "", "DIB_DEBIAN_DEBOOTSTRAP_SCRIPT": "sid",
	}, "MY_CONFIG="+conf, "DIB_ADD_APT_KEYS="+dir)
	if err := p.lendHostPaths(); err != nil {
		t.Fatal(err)
	}
	files := p.packLoans()
	if len(files) != 4 || len(p.Spec.HostPaths) != 4 {
		t.Fatalf("files %d, spec %v", len(files), p.Spec.HostPaths)
	}
	env := p.Spec.Env
	for k, want := range map[string]string{
		"DIB_DEV_USER_AUTHORIZED_KEYS":  api.LentDir + "/lent0.tar/0/keys",
		"DIB_ADD_APT_KEYS":              api.LentDir + "/lent1.tar/0/" + filepath.Base(dir),
		"DIB_YUM_REPO_CONF":             api.LentDir + "/lent2.tar/0/a.repo " + api.LentDir + "/lent2.tar/1/b.repo",
		"MY_CONFIG":                     api.LentDir + "/lent3.tar/0/my.conf",
		"DIB_DEBIAN_DEBOOTSTRAP_SCRIPT": "sid", // debootstrap's own script, by name
		"DIB_RELEASE":                   "trixie",
	} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
	for i, f := range files {
		if f.Name != p.Spec.HostPaths[i] || f.Name != p.Lender.Loans()[i].Input {
			t.Errorf("input %d is %s, the spec lends %s", i, f.Name, p.Spec.HostPaths[i])
		}
	}
}

func TestLendHostPathsRefuses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, []byte("x"), 0o600)
	for _, c := range []struct {
		env       map[string]string
		hostPaths []string
		want      string
	}{
		{map[string]string{"DIB_APT_CONF": filepath.Join(dir, "nope")}, nil, "DIB_APT_CONF=" + filepath.Join(dir, "nope") + " (the apt.conf apt-conf installs): "},
		{map[string]string{"DIB_APT_CONF": dir}, nil, "is a directory, and the variable names a file"},
		{map[string]string{"DIB_ILO_FIRMWARE_PATH": file}, nil, "DIB_ILO_FIRMWARE_PATH=" + file + " (the directory of firmware ilo unpacks): is a file, and the variable names a directory"},
		{map[string]string{"DIB_YUM_REPO_CONF": file + " " + filepath.Join(dir, "gone.repo")}, nil, "gone.repo: no such file or directory here"},
		{nil, []string{"MY_CONFIG"}, "--host-path MY_CONFIG (or DIBVM_HOST_PATH): MY_CONFIG is not set"},
		{nil, []string{"MY_CONFIG="}, "MY_CONFIG is not set"},
		{nil, []string{"MY-CONFIG=x"}, `--host-path "MY-CONFIG"`},
		{nil, []string{"MY_CONFIG=" + filepath.Join(dir, "nope")}, "MY_CONFIG=" + filepath.Join(dir, "nope") + " (lent by --host-path): "},
	} {
		err := lendPlan(c.env, c.hostPaths...).lendHostPaths()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: %v, want %q", c.env, c.hostPaths, err, c.want)
		}
	}
}

// A checkpoint's key follows what a setting lends, not where it lies on
// the host: the same file from elsewhere keys the same, another content
// does not.
func TestLentPathsKeyByContent(t *testing.T) {
	keyOf := func(dir, content string) (map[string]string, []string) {
		path := filepath.Join(dir, "apt.conf")
		os.WriteFile(path, []byte(content), 0o644)
		p := lendPlan(map[string]string{"DIB_APT_CONF": path})
		if err := p.lendHostPaths(); err != nil {
			t.Fatal(err)
		}
		p.packLoans()
		host, err := p.hostInputs()
		if err != nil {
			t.Fatal(err)
		}
		var inputs []string
		for _, h := range host {
			inputs = append(inputs, h.Name+"="+h.Digest)
		}
		return p.Spec.Env, inputs
	}
	env1, in1 := keyOf(t.TempDir(), "a")
	env2, in2 := keyOf(t.TempDir(), "a")
	_, in3 := keyOf(t.TempDir(), "b")
	if env1["DIB_APT_CONF"] != env2["DIB_APT_CONF"] || strings.Join(in1, ",") != strings.Join(in2, ",") {
		t.Errorf("the same file from two places keys differently: %v %v, %v %v", env1, in1, env2, in2)
	}
	if strings.Join(in1, ",") == strings.Join(in3, ",") || len(in3) != 1 {
		t.Errorf("another content keys the same: %v, %v", in1, in3)
	}
}
