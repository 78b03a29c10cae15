package plan

import (
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
)

func seededTestLayout() *api.Layout {
	return &api.Layout{Label: "gpt", Partitions: []api.Partition{
		{Name: "ESP", Type: "EF00", FS: &api.Filesystem{Type: "vfat", MountPoint: "/boot/efi"}},
		{Name: "BSP", Type: "EF02"},
		{Name: "root", FS: &api.Filesystem{Type: "ext4", MountPoint: "/"}},
		{Name: "data", FS: &api.Filesystem{Type: "xfs", MountPoint: "/srv", UUID: "given"}},
	}}
}

// The same seed gives the same identifiers, of the forms the tools take;
// another seed gives others; what the configuration fixes stays; what
// cannot be reproduced is said.
func TestSeedLayout(t *testing.T) {
	var out bytes.Buffer
	a, b, c := seededTestLayout(), seededTestLayout(), seededTestLayout()
	notes := seedLayout(a, "one", &out)
	seedLayout(b, "one", &bytes.Buffer{})
	seedLayout(c, "two", &bytes.Buffer{})
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	ids := func(l *api.Layout) []string {
		return []string{l.DiskID, l.Partitions[0].UUID, l.Partitions[1].UUID, l.Partitions[2].UUID, l.Partitions[0].FS.UUID, l.Partitions[2].FS.UUID}
	}
	for i, id := range ids(a) {
		if i == 4 {
			if !regexp.MustCompile(`^[0-9A-F]{4}-[0-9A-F]{4}$`).MatchString(id) {
				t.Errorf("vfat volume ID %q", id)
			}
		} else if !uuid.MatchString(id) {
			t.Errorf("identifier %d %q is no version 8 UUID", i, id)
		}
		if id != ids(b)[i] {
			t.Errorf("identifier %d differs for the same seed: %s %s", i, id, ids(b)[i])
		}
		if id == ids(c)[i] {
			t.Errorf("identifier %d is the same for another seed", i)
		}
	}
	seen := map[string]bool{}
	for _, id := range ids(a) {
		if seen[id] {
			t.Errorf("%s given twice", id)
		}
		seen[id] = true
	}
	if a.Partitions[3].FS.UUID != "given" {
		t.Errorf("the configuration's UUID was replaced")
	}
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "the xfs filesystem of partition data") {
		t.Errorf("what is not reproducible, for the statement: %q", notes)
	}
	if !strings.Contains(out.String(), "not reproducible: the xfs filesystem of partition data") {
		t.Errorf("no word of the xfs filesystem: %q", out.String())
	}
	mbr := &api.Layout{Label: "mbr"}
	seedLayout(mbr, "one", &out)
	if !regexp.MustCompile(`^0x[0-9a-f]{8}$`).MatchString(mbr.DiskID) {
		t.Errorf("MBR disk ID %q", mbr.DiskID)
	}
}

// A reproducible plan's default seed is of its inputs: the same elements
// and settings give the same identifiers whatever the output directory
// and the epoch; a changed hook gives others; the spec on the input disk
// carries them and the epoch.
func TestDefaultSeedIsOfTheInputs(t *testing.T) {
	dir := t.TempDir()
	writeElement(t, dir, "distro", map[string]string{
		"element-provides":   "operating-system\n",
		"root.d/10-root":     "#!/bin/sh\ntrue\n",
		"install.d/50-thing": "#!/bin/sh\necho one\n",
	})
	plan := func(epoch int64) *Plan {
		t.Helper()
		o := Options{Output: filepath.Join(t.TempDir(), "img"), Types: []string{"raw"}, Elements: []string{"distro", "block-device-efi"},
			SkipBase: true, Arch: "amd64", ElementsPath: dir, ScratchSize: 1 << 30, Stdout: io.Discard, Stderr: io.Discard,
			Reproducible: &Reproducible{Epoch: epoch}}
		p, err := Prepare(o)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := plan(1700000000), plan(1700000000)
	if a.Spec.Layout.DiskID == "" || a.Spec.Layout.DiskID != b.Spec.Layout.DiskID {
		t.Errorf("disk IDs %q and %q for the same inputs", a.Spec.Layout.DiskID, b.Spec.Layout.DiskID)
	}
	var spec api.Spec
	if err := json.Unmarshal(inputNamed(a, api.SpecFile), &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Layout.DiskID != a.Spec.Layout.DiskID || spec.SourceDateEpoch == nil || *spec.SourceDateEpoch != 1700000000 {
		t.Errorf("the spec on the input disk has disk ID %q, epoch %v", spec.Layout.DiskID, spec.SourceDateEpoch)
	}
	if c := plan(1700000001); c.Spec.Layout.DiskID != a.Spec.Layout.DiskID {
		t.Error("another epoch, another disk ID: the epoch changes times, not identifiers")
	}
	writeElement(t, dir, "distro", map[string]string{"install.d/50-thing": "#!/bin/sh\necho two\n"})
	if c := plan(1700000000); c.Spec.Layout.DiskID == a.Spec.Layout.DiskID {
		t.Error("another hook, the same disk ID")
	}
}

func inputNamed(p *Plan, name string) []byte {
	for _, f := range p.Inputs {
		if f.Name == name {
			return f.Data
		}
	}
	return nil
}

// The default seed covers DIB's settings and what --env passes, not the
// rest of the caller's environment, which differs from user to user,
// nor the settings of how the build runs, nor secrets: the identifiers
// are public, and a digest of a password is a way to test guesses.
func TestDefaultSeedIgnoresTheCallersOtherVariables(t *testing.T) {
	dir := t.TempDir()
	writeElement(t, dir, "distro", map[string]string{"element-provides": "operating-system\n", "root.d/10-root": "#!/bin/sh\ntrue\n"})
	diskID := func(environ, explicit []string) string {
		t.Helper()
		o := Options{Output: filepath.Join(t.TempDir(), "img"), Types: []string{"raw"}, Elements: []string{"distro", "block-device-efi"},
			SkipBase: true, Arch: "amd64", ElementsPath: dir, ScratchSize: 1 << 30, Stdout: io.Discard, Stderr: io.Discard,
			Environ: environ, ExplicitEnv: explicit, Reproducible: &Reproducible{Epoch: 1}}
		p, err := Prepare(o)
		if err != nil {
			t.Fatal(err)
		}
		return p.Spec.Layout.DiskID
	}
	base := diskID(nil, nil)
	if diskID([]string{"CI=true", "LANGUAGE=fr", "DIB_NO_CHECKPOINTS=1", "DIB_CHECKSUM=1", "DIB_DEV_USER_PASSWORD=hunter2"}, nil) != base {
		t.Error("the caller's other variables changed the seed")
	}
	if diskID([]string{"DIB_RELEASE=trixie"}, nil) == base {
		t.Error("a DIB setting did not change the seed")
	}
	if diskID([]string{"MY_SETTING=1"}, []string{"MY_SETTING=1"}) == base {
		t.Error("a variable --env passes did not change the seed")
	}
}

// extlinux records sectors a reproducible build moves: refused before
// the build.
func TestReproducibleRefusesExtlinux(t *testing.T) {
	dir := t.TempDir()
	writeElement(t, dir, "distro", map[string]string{"element-provides": "operating-system\n", "root.d/10-root": "#!/bin/sh\ntrue\n"})
	o := Options{Output: filepath.Join(t.TempDir(), "img"), Types: []string{"raw"}, Elements: []string{"distro", "block-device-mbr"},
		SkipBase: true, Arch: "amd64", ElementsPath: dir, ScratchSize: 1 << 30, Stdout: io.Discard, Stderr: io.Discard,
		Environ: []string{"DIB_EXTLINUX=1"}, Reproducible: &Reproducible{Epoch: 1}}
	if _, err := Prepare(o); err == nil || !strings.Contains(err.Error(), "DIB_EXTLINUX with a reproducible build") {
		t.Errorf("DIB_EXTLINUX=1 reproducibly: %v", err)
	}
}
