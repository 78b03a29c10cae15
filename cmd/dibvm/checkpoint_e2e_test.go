//go:build e2e

package main_test

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/host/sha256sum"
)

// entry is what a tree's tar says of one file.
type entry struct {
	mode, owner, link, sum string
}

// readTree reads a tar of a tree: every file's mode, owner, link target
// and content digest, by name. Which name of a hard-linked file tar
// stores as the file and which as links to it follows the order the
// directory lists them in, and ext4 lists them by a hash seeded anew for
// every file system: so every name of a hard-linked file reads as the
// file itself, and its link is the whole set of its names.
func readTree(t *testing.T, path string) map[string]entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]entry{}
	names := map[string][]string{} // the names of each hard-linked file, by its first
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			for first, group := range names {
				e := out[first]
				slices.Sort(group)
				e.link = "hard link: " + strings.Join(group, " ")
				for _, n := range group {
					out[n] = e
				}
			}
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag == tar.TypeLink {
			first := strings.TrimPrefix(h.Linkname, "./")
			if len(names[first]) == 0 {
				names[first] = []string{first}
			}
			names[first] = append(names[first], name)
			continue
		}
		sum, _, _ := sha256sum.Reader(tr)
		out[name] = entry{
			mode: fmt.Sprintf("%c %o", h.Typeflag, h.Mode), owner: fmt.Sprintf("%d:%d", h.Uid, h.Gid),
			link: h.Linkname, sum: sum,
		}
	}
}

// varies are the files two cold builds of the same inputs make
// differently: logs, caches, machine identity, random seeds, and archives
// that record when they were made.
var varies = regexp.MustCompile(`^(var/log/|var/cache/|var/lib/dpkg/[a-z-]+-old$|etc/machine-id$|var/lib/dbus/machine-id$|var/lib/systemd/|boot/initrd\.img|etc/\.pwd\.lock$|etc/(shadow|gshadow|passwd|group)-$|etc/ssh/ssh_host_|var/lib/apt/lists/|var/lib/ucf/)`)

// A build resumed from checkpoints gives the tree a build from the start
// gives, made at the same time from the same inputs: the same files with
// the same owners and modes, the same packages, the same contents, but
// for what two cold builds also make differently.
func TestE2ECheckpointsMatchColdBuild(t *testing.T) {
	sourcesEnv, _ := debianSources(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "checkpoints")
	build := func(name string, env ...string) (map[string]entry, string) {
		t.Helper()
		out := filepath.Join(dir, name, "deb")
		r := dibvm(t, append(slices.Clone(sourcesEnv), env...), 75*time.Minute, "create", "-n", "-t", "tar", "-o", out, "debian-minimal")
		if r.code != 0 {
			t.Fatalf("%s build: exit %d\n%s", name, r.code, tail(r.stdout+r.stderr, 60))
		}
		t.Logf("%s build: %s", name, r.took.Round(time.Second))
		return readTree(t, out+".tar"), r.stdout
	}
	kept, _ := build("kept", "DIBVM_CHECKPOINTS_DIR="+store)
	cold, _ := build("cold", "DIB_NO_CHECKPOINTS=1")
	resumed, stdout := build("resumed", "DIBVM_CHECKPOINTS_DIR="+store)
	if !strings.Contains(stdout, "dibvm: resuming after post-install.d") {
		t.Errorf("the third build did not resume after post-install.d:\n%s", checkpointLines(stdout))
	}
	for _, other := range []struct {
		name string
		tree map[string]entry
	}{{"the cold build", cold}, {"the build that kept the checkpoints", kept}} {
		var missing, extra, differ []string
		for name, e := range resumed {
			o, ok := other.tree[name]
			switch {
			case !ok:
				extra = append(extra, name)
			case e.mode != o.mode || e.owner != o.owner || e.link != o.link:
				differ = append(differ, fmt.Sprintf("%s (%s %s %q, want %s %s %q)", name, e.mode, e.owner, e.link, o.mode, o.owner, o.link))
			case e.sum != o.sum && !varies.MatchString(name):
				differ = append(differ, name+" (content)")
			}
		}
		for name := range other.tree {
			if _, ok := resumed[name]; !ok {
				missing = append(missing, name)
			}
		}
		for _, l := range []struct {
			what  string
			names []string
		}{{"lacks files of", missing}, {"has files not in", extra}, {"has files that differ from those of", differ}} {
			slices.Sort(l.names)
			if len(l.names) > 0 {
				t.Errorf("the resumed build's tree %s %s: %d files: %s", l.what, other.name, len(l.names), strings.Join(l.names[:min(len(l.names), 40)], ", "))
			}
		}
	}
	if resumed["var/lib/dpkg/status"].sum != cold["var/lib/dpkg/status"].sum {
		t.Error("the resumed build's package manifest (var/lib/dpkg/status) is not the cold build's")
	}
}
