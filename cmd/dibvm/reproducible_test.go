package main_test

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/host/provenance"
)

// reproducibleTypes are every output type a build writes.
var reproducibleTypes = []string{"raw", "qcow2", "vhd", "vhdx", "vmdk", "tar", "tgz", "squash", "docker.tar"}

// digests are the SHA-256 of each output of the build at out, by type.
func digests(t *testing.T, out string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, ext := range reproducibleTypes {
		f, err := os.Open(out + "." + ext)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, f)
		f.Close()
		sums[ext] = hex.EncodeToString(h.Sum(nil))
	}
	return sums
}

// tarEntries are the tar's entries, each as its content and header but
// for the time, and the time apart.
func tarEntries(t *testing.T, path string) (entries map[string]string, times map[string]time.Time) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, times = map[string]string{}, map[string]time.Time{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return entries, times
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		times[h.Name] = h.ModTime
		entries[h.Name] = strings.Join([]string{string(h.Typeflag), h.Linkname, h.Uname, string(b)}, "|") + "|" + h.FileInfo().Mode().String()
	}
}

// A build with SOURCE_DATE_EPOCH is the same bytes, in every output
// type, whoever builds it, wherever it writes, from nothing or resumed
// from checkpoints: root from the start, an ordinary user with its own
// cache, and that user again resumed. Its element leaves what real
// builds leave that differs from run to run, and fills the ESP. Another
// epoch changes the times and what the hooks made of the epoch, nothing
// else.
func TestReproducibleBuilds(t *testing.T) {
	needVM(t)
	const epoch = "1700000000"
	args := []string{"create", "-n", "--progress", "plain", "-t", "raw,qcow2,vhd,vhdx,vmdk,tar,tgz,squashfs,docker", "run-to-run", "block-device-efi"}

	first := filepath.Join(t.TempDir(), "img")
	key := filepath.Join(t.TempDir(), "signing-key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ci@example.com", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	r := dibvm(t, []string{"ELEMENTS_PATH=" + testElements(t), "SOURCE_DATE_EPOCH=" + epoch, "DIB_ROOT_LABEL=myroot"},
		10*time.Minute, append(args, "-o", first, "--no-checkpoints", "--sign", key)...)
	if r.code != 0 {
		t.Fatalf("as root: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	want := digests(t, first)
	checkProvenance(t, first, want)
	checkSignedProvenance(t, first, key)

	h := newHostileRun(t)
	// The user's own checkpoints, none yet: the first build is from
	// nothing, the second resumes from what it kept.
	store := filepath.Join(h.root, "checkpoints")
	os.Mkdir(store, 0o755)
	if h.cred != nil {
		os.Chown(store, int(h.cred.Uid), int(h.cred.Gid))
	}
	for i, name := range []string{"cold", "resumed"} {
		out := filepath.Join(h.out, name, "img")
		os.MkdirAll(filepath.Dir(out), 0o755)
		if h.cred != nil {
			os.Chown(filepath.Dir(out), int(h.cred.Uid), int(h.cred.Gid))
		}
		r := h.run(t, nil, []string{"SOURCE_DATE_EPOCH=" + epoch, "DIB_ROOT_LABEL=myroot", "DIBVM_CHECKPOINTS_DIR=" + store}, 10*time.Minute, append(args, "-o", out)...)
		if r.code != 0 {
			t.Fatalf("%s, as another user: exit %d\n%s\n%s", name, r.code, r.stdout, r.stderr)
		}
		if resumed := strings.Contains(r.stdout, "resumed after"); resumed != (i == 1) {
			t.Errorf("%s build: resumed from a checkpoint %v\n%s", name, resumed, tail(r.stdout, 5))
		}
		for ext, sum := range digests(t, out) {
			if sum != want[ext] {
				t.Errorf("%s build as another user: the %s differs from root's", name, ext)
			}
		}
	}
	checkReproducibleImage(t, first, epoch)

	other := filepath.Join(h.out, "other-epoch", "img")
	os.MkdirAll(filepath.Dir(other), 0o755)
	if h.cred != nil {
		os.Chown(filepath.Dir(other), int(h.cred.Uid), int(h.cred.Gid))
	}
	// (The disk's identifiers do not depend on the formats asked for,
	// and the tar shows every file and time.)
	r = h.run(t, nil, []string{"SOURCE_DATE_EPOCH=1600000000", "DIB_ROOT_LABEL=myroot"}, 10*time.Minute, "create", "-n", "--progress", "plain", "-t", "raw,tar", "-o", other, "run-to-run", "block-device-efi")
	if r.code != 0 {
		t.Fatalf("another epoch: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	b, _ := os.ReadFile(other + ".tar")
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) == want["tar"] {
		t.Error("another epoch, the same tar")
	}
	was, _ := tarEntries(t, first+".tar")
	now, times := tarEntries(t, other+".tar")
	for name, entry := range was {
		if name == "./etc/source-date-epoch" {
			if now[name] == entry || !strings.Contains(now[name], "1600000000") {
				t.Errorf("another epoch: the hooks' SOURCE_DATE_EPOCH %q", now[name])
			}
			continue
		}
		if now[name] != entry {
			t.Errorf("another epoch changed %s: %q, was %q", name, now[name], entry)
		}
	}
	if len(was) != len(now) {
		t.Errorf("another epoch: %d entries, was %d", len(now), len(was))
	}
	if limit := time.Unix(1600000000, 0); times["./etc/made-at-build-time"].After(limit) {
		t.Errorf("a file made at build time is of %v, after the epoch", times["./etc/made-at-build-time"])
	}
	checkRebuild(t, h, other)
}

// checkRebuild builds the build at out again from its statement, as the
// ordinary user into another directory: the same bytes. With an element
// changed since, it is refused before the VM boots, naming the element.
func checkRebuild(t *testing.T, h *hostileRun, out string) {
	t.Helper()
	again := filepath.Join(h.out, "again")
	os.Mkdir(again, 0o755)
	if h.cred != nil {
		os.Chown(again, int(h.cred.Uid), int(h.cred.Gid))
	}
	statement := out + ".provenance.json"
	r := h.run(t, nil, nil, 10*time.Minute, "rebuild", "-o", again, statement)
	if r.code != 0 || !strings.Contains(r.stdout, "OK: all 2 files are the same bytes as the statement says") {
		t.Errorf("dibvm rebuild: exit %d\n%s\n%s", r.code, tail(r.stdout, 20), r.stderr)
	}
	hook := filepath.Join(h.elements, "run-to-run", "install.d", "50-leave-traces")
	b, err := os.ReadFile(hook)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hook, append(b, "# changed since\n"...), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r = h.run(t, nil, nil, time.Minute, "rebuild", "-o", again, statement)
	if r.code == 0 || !strings.Contains(r.stderr, "the elements are not the ones the statement names: run-to-run (its files differ)") {
		t.Errorf("dibvm rebuild with an element changed: exit %d\n%s\n%s", r.code, tail(r.stdout, 20), r.stderr)
	}
	t.Logf("rebuild with an element changed refused after %s", time.Since(start).Round(time.Millisecond))
}

// checkReproducibleImage checks the reproducible build at out from the
// host: what differs from run to run is gone, no time is after the
// epoch, the disk is block-device-efi's, and the filesystems made again
// from the tree are sound and hold its files.
func checkReproducibleImage(t *testing.T, out, epoch string) {
	t.Helper()
	files, times := tarEntries(t, out+".tar")
	for _, gone := range []string{"./var/log/dpkg.log", "./var/log/apt/history.log", "./var/cache/ldconfig/aux-cache", "./var/lib/systemd/random-seed", "./var/lib/dpkg/status-old"} {
		if _, ok := files[gone]; ok {
			t.Errorf("%s is in the image", gone)
		}
	}
	if !strings.Contains(files["./etc/source-date-epoch"], "|"+epoch+"\n|") {
		t.Errorf("the hooks' SOURCE_DATE_EPOCH: %q", files["./etc/source-date-epoch"])
	}
	if strings.Count(files["./etc/machine-id"], "|") != 4 || !strings.Contains(files["./etc/machine-id"], "||") {
		t.Errorf("machine-id not emptied: %q", files["./etc/machine-id"])
	}
	limit := time.Unix(1700000000, 0)
	for name, mtime := range times {
		if mtime.After(limit) {
			t.Errorf("%s is of %v, after the epoch", name, mtime)
		}
	}
	root, esp := checkGPTWithESP(t, out+".raw")
	if o, err := exec.Command(tool(t, "e2fsck", "e2fsprogs"), "-fn", root).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn on the root made again: %v\n%s", err, o)
	}
	if got := debugfsCat(t, root, "/etc/made-at-build-time"); got != "made\n" {
		t.Errorf("the root made again holds %q", got)
	}
	if o, err := exec.Command(tool(t, "fsck.fat", "dosfstools"), "-n", esp).CombinedOutput(); err != nil {
		t.Errorf("fsck.fat -n on the ESP made again: %v\n%s", err, o)
	}
	for file, want := range map[string]string{"EFI/tiny/deeper/still/grub.cfg": "deep\n", "EFI/tiny/a file with a long name, number 39.cfg": "39\n"} {
		cmd := exec.Command(tool(t, "mtype", "mtools"), "-i", esp, "::/"+file)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if o, err := cmd.CombinedOutput(); err != nil || string(o) != want {
			t.Errorf("the ESP made again holds %q in %s: %v", o, file, err)
		}
	}
}

// checkProvenance checks the provenance statement of the build at out,
// whose outputs have the digests want (by extension): it names each, and
// dibvm verify says so.
// checkSignedProvenance checks the statement of the build at out was
// signed with key: as OpenSSH's ssh-keygen -Y verify checks, and dibvm
// verify --trust.
func checkSignedProvenance(t *testing.T, out, key string) {
	t.Helper()
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	allowed := filepath.Join(t.TempDir(), "allowed_signers")
	os.WriteFile(allowed, []byte("ci@example.com "+string(pub)), 0o644)
	statement, err := os.Open(out + ".provenance.json")
	if err != nil {
		t.Fatal(err)
	}
	defer statement.Close()
	cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "ci@example.com", "-n", "dibvm-provenance", "-s", out+".provenance.json.sig")
	cmd.Stdin = statement
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("ssh-keygen -Y verify of the statement: %v\n%s", err, b)
	}
	if r := dibvm(t, nil, time.Minute, "verify", "--trust", allowed, out+".raw"); r.code != 0 || !strings.Contains(r.stdout, "a trusted key") {
		t.Errorf("dibvm verify --trust: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func checkProvenance(t *testing.T, out string, want map[string]string) {
	t.Helper()
	st, err := provenance.Read(out + ".provenance.json")
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]string{}
	for _, s := range st.Subject {
		named[s.Name] = s.Digest["sha256"]
	}
	for ext, sum := range want {
		if name := filepath.Base(out) + "." + ext; named[name] != sum {
			t.Errorf("the provenance statement gives %s as %q, want %s", name, named[name], sum)
		}
	}
	if r := dibvm(t, nil, time.Minute, "verify", out+".qcow2"); r.code != 0 || !strings.Contains(r.stdout, "OK: the files match the statement") {
		t.Errorf("dibvm verify: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
