package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/ocicache"
	"github.com/dibvm/dibvm/host/ocicache/registrytest"
)

// signingKey makes an ed25519 key pair in dir and a file that trusts it, as
// allowed_signers lines do.
func signingKey(t *testing.T, dir, name string) (key, allowed string) {
	t.Helper()
	key = filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name+"@example.com", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	allowed = key + ".allowed"
	os.WriteFile(allowed, []byte(name+"@example.com "+string(pub)), 0o644)
	return key, allowed
}

// Two runners share checkpoints through a real registry on 127.0.0.1.
// Root builds from nothing and pushes what it kept, signed. Another user,
// with a store of its own, is offered first a registry that hangs, then
// the same checkpoints signed by a key it does not trust, then them with
// their layers changed in the registry: it says so of each, builds from
// nothing, keeps nothing of theirs, and gets root's tree. With an empty
// store and the signer trusted, it resumes after the last phase from the
// registry and gets the same tree again.
func TestSharedCacheAcrossRunners(t *testing.T) {
	needVM(t)
	dir := t.TempDir()
	signKey, trustSigner := signingKey(t, dir, "pipeline")
	otherKey, _ := signingKey(t, dir, "stranger")
	reg := registrytest.Start(t, "", "")
	tampered := registrytest.Start(t, "", "")
	// Two that hang: one asked for checkpoints, one to take them.
	hanging, hangingTo := registrytest.Hanging(t), registrytest.Hanging(t)
	// The hooks' environment is in the keys: runners that share
	// checkpoints give their hooks the same (as CI runners do).
	args := []string{"create", "-n", "--no-host-env", "--progress", "plain", "-t", "tar", "tiny-os"}

	first := filepath.Join(dir, "first", "img")
	// Each runner keeps its downloads where it will (DIB_IMAGE_CACHE is
	// passed to the hooks, but the guest sets its own).
	r := dibvm(t, []string{"ELEMENTS_PATH=" + testElements(t), "DIBVM_CHECKPOINTS_DIR=" + filepath.Join(dir, "store"), "DIB_IMAGE_CACHE=" + filepath.Join(dir, "images")}, 10*time.Minute,
		append(args, "-o", first, "--cache-to", reg.Addr+"/dibvm/cache", "--cache-sign", signKey)...)
	if r.code != 0 {
		t.Fatalf("the pushing runner: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "sent checkpoint") || !strings.Contains(r.stdout+r.stderr, "appliance: base sent to the shared cache") {
		t.Fatalf("the pushing runner did not send its checkpoints and appliance base:\n%s\n%s", checkpointLines(r.stdout), r.stderr)
	}
	want := readTar(t, first+".tar")
	// The same checkpoints, pushed by hand: signed by a stranger, and
	// signed right to a registry whose storage is then changed.
	env := []string{"DIBVM_CHECKPOINTS_DIR=" + filepath.Join(dir, "store")}
	for _, push := range [][]string{{reg.Addr + "/dibvm/stranger", otherKey}, {tampered.Addr + "/dibvm/cache", signKey}} {
		if r := dibvm(t, env, 5*time.Minute, "cache", "push", "--remote", push[0], "--cache-sign", push[1]); r.code != 0 {
			t.Fatalf("cache push: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	}
	changed := 0
	for _, b := range tampered.Blobs() {
		if info, err := os.Stat(b); err == nil && info.Size() > 1<<20 {
			f, _ := os.OpenFile(b, os.O_WRONLY, 0)
			f.WriteAt([]byte("changed"), info.Size()/2)
			f.Close()
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("no layer in the registry to change")
	}
	if r := dibvm(t, env, time.Minute, "cache", "ls", "--remote", reg.Addr+"/dibvm/stranger", "--cache-trust", trustSigner); r.code != 0 || !strings.Contains(r.stdout, "a key not in --cache-trust") {
		t.Errorf("cache ls of checkpoints by a stranger: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	h := newHostileRun(t)
	for _, f := range []string{trustSigner} {
		copyFile(t, f, filepath.Join(h.root, filepath.Base(f)))
		if h.cred != nil {
			os.Chown(filepath.Join(h.root, filepath.Base(f)), int(h.cred.Uid), int(h.cred.Gid))
		}
	}
	trust := filepath.Join(h.root, filepath.Base(trustSigner))
	// The user's own signing key, for a push to a registry that hangs.
	userKey := filepath.Join(h.root, "user-key")
	copyFile(t, otherKey, userKey)
	os.Chmod(userKey, 0o600)
	if h.cred != nil {
		os.Chown(userKey, int(h.cred.Uid), int(h.cred.Gid))
	}
	build := func(name string, fresh bool, extra []string, from ...string) (result, string) {
		t.Helper()
		// Checkpoints of its own; with fresh, an empty cache of its own,
		// appliance and all.
		cache := filepath.Join(h.root, name+"-cache")
		store := filepath.Join(cache, "checkpoints")
		env := []string{"DIBVM_CHECKPOINTS_DIR=" + store, "DIBVM_CACHE_TRUST=" + trust}
		if fresh {
			// (What the host's hypervisor did is the host's, not the cache's.)
			env = append(env, "DIBVM_CACHE_DIR="+cache, "DIB_IMAGE_CACHE="+filepath.Join(cache, "images"),
				"DIBVM_ACCEL_MEMO="+filepath.Join(h.home, ".cache", "dibvm", "accel-memo.json"))
		}
		out := filepath.Join(h.out, name, "img")
		for _, d := range []string{cache, store, filepath.Dir(out)} {
			os.MkdirAll(d, 0o755)
			if h.cred != nil {
				os.Chown(d, int(h.cred.Uid), int(h.cred.Gid))
			}
		}
		a := append(append([]string{}, args...), extra...)
		for _, f := range from {
			a = append(a, "--cache-from", f)
		}
		r := h.run(t, nil, env, 10*time.Minute, append(a, "-o", out)...)
		if r.code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", name, r.code, r.stdout, r.stderr)
		}
		t.Logf("%s:\n%s\n%s", name, dibvmLines(r.stdout), r.stderr)
		if got := readTar(t, out+".tar"); !sameFiles(got, want) {
			t.Errorf("%s: the tree differs from the pushing runner's", name)
		}
		if left := pulledLeft(store); len(left) != 0 {
			t.Errorf("%s: left in the store after pulls: %v", name, left)
		}
		return r, store
	}

	r, _ = build("refused", false, []string{"--cache-to", hangingTo + "/dibvm/pushed", "--cache-sign", userKey}, hanging+"/dibvm/cache", reg.Addr+"/dibvm/stranger", tampered.Addr+"/dibvm/cache")
	wantLines(t, "offered a hanging registry, a stranger's checkpoints and changed layers", r.stdout+r.stderr,
		hanging+"/dibvm/cache: the registry stopped answering", "(not asked again in this build)",
		"not signed by a trusted key",
		"refused: "+tampered.Addr+"/dibvm/cache: ",
		"not sent: "+hangingTo+"/dibvm/pushed: the registry stopped answering")
	if strings.Contains(r.stdout, "took checkpoint") || strings.Contains(r.stdout, "resuming after") {
		t.Errorf("resumed from a checkpoint it should have refused:\n%s", checkpointLines(r.stdout))
	}

	start := time.Now()
	r, store := build("pulled", true, nil, reg.Addr+"/dibvm/cache")
	wantLines(t, "the second runner", r.stdout+r.stderr, "from the shared cache", "resuming after", "appliance: base taken from the shared cache")
	t.Logf("the second runner, pulling and resuming: %s", time.Since(start).Round(time.Second))
	if metas, _ := filepath.Glob(filepath.Join(store, "*.json")); len(metas) == 0 {
		t.Error("the second runner's store took no checkpoint")
	}
}

// dibvmLines are dibvm's own lines of a build's output.
func dibvmLines(stdout string) string {
	var out []string
	for _, l := range strings.Split(unstamp(stdout), "\n") {
		if strings.HasPrefix(l, "dibvm: ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func sameFiles(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// dibvm cache push, ls and pull --remote move checkpoints by hand through
// a registry that asks for a password, which comes from the user's
// Docker config: pushed signed, listed with their signer, pulled into
// another store only with the signer trusted.
func TestCacheRemoteCommands(t *testing.T) {
	dir := t.TempDir()
	signKey, trust := signingKey(t, dir, "pipeline")
	_, strangerTrust := signingKey(t, dir, "stranger")
	reg := registrytest.Start(t, "ci", "s3cret")
	from := filepath.Join(dir, "from")
	a := &checkpoint.Store{Dir: from}
	ss, err := a.Open()
	if err != nil {
		t.Fatal(err)
	}
	var below *checkpoint.Meta
	for i, phase := range []string{"root.d", "install.d"} {
		l, err := ss.NewLayer(below, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		m := &checkpoint.Meta{Key: strings.Repeat(string(rune('a'+i)), 64), Phase: phase, Made: time.Now(), Elements: []string{"tiny-os"}}
		if below != nil {
			m.Parent, m.Backing = below.Key, below.Layer
		}
		if err := ss.Publish(l, m); err != nil {
			t.Fatal(err)
		}
		below = m
	}
	ss.Close()
	ref := reg.Addr + "/dibvm/cache"
	docker := t.TempDir()
	// No appliance: only checkpoints to push (TestSharedCacheAcrossRunners
	// sends a base).
	env := []string{"DIBVM_CHECKPOINTS_DIR=" + from, "DOCKER_CONFIG=" + docker, "DIBVM_CACHE_DIR=" + t.TempDir()}
	if r := dibvm(t, env, time.Minute, "cache", "push", "--remote", ref, "--cache-sign", signKey); r.code == 0 || !strings.Contains(r.stderr, "401") && !strings.Contains(r.stderr, "UNAUTHORIZED") {
		t.Errorf("pushed without credentials: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	reg.DockerConfig(t, docker, "ci", "s3cret")
	r := dibvm(t, env, time.Minute, "cache", "push", "--remote", ref, "--cache-sign", signKey)
	if r.code != 0 || strings.Count(r.stdout, "Pushed checkpoint") != 2 {
		t.Fatalf("cache push: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = dibvm(t, env, time.Minute, "cache", "ls", "--remote", ref, "--cache-trust", trust)
	if r.code != 0 || !strings.Contains(r.stdout, "install.d") || !strings.Contains(r.stdout, "SHA256:") || !strings.Contains(r.stdout, "2 checkpoints and 0 appliance bases in "+ref) {
		t.Errorf("cache ls --remote: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	to := filepath.Join(dir, "to")
	env = []string{"DIBVM_CHECKPOINTS_DIR=" + to, "DOCKER_CONFIG=" + docker, "DIBVM_CACHE_DIR=" + t.TempDir()}
	if r := dibvm(t, env, time.Minute, "cache", "pull", "--remote", ref, "--cache-trust", strangerTrust, "bbbb"); r.code == 0 || !strings.Contains(r.stderr, "not signed by a trusted key") {
		t.Errorf("pulled trusting another key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = dibvm(t, env, time.Minute, "cache", "pull", "--remote", ref, "--cache-trust", trust, "bbbb")
	if r.code != 0 || !strings.Contains(r.stdout, "Pulled checkpoint bbbbbbbbbbbb after install.d") {
		t.Fatalf("cache pull: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = dibvm(t, env, time.Minute, "cache", "ls")
	if !strings.Contains(r.stdout, "2 checkpoints") {
		t.Errorf("the store pulled into:\n%s%s", r.stdout, r.stderr)
	}
	if left := pulledLeft(to); len(left) != 0 {
		t.Errorf("left after pulls: %v", left)
	}
}

// pulledLeft is what pulls left in the store's directory for them, but
// its lock file.
func pulledLeft(store string) []string {
	entries, _ := os.ReadDir(filepath.Join(store, ".shared"))
	var out []string
	for _, e := range entries {
		if e.Name() != ocicache.PartialsLock {
			out = append(out, e.Name())
		}
	}
	return out
}
