package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/elements/elementtest"
)

// writeYAML writes a definitions file into a directory of its own.
func writeYAML(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "images.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// noteElement writes DIB_IMAGE_NOTE into the image's /etc/note, from
// the chroot.
func noteElement(t *testing.T) string {
	return elementtest.WriteTree(t, map[string]string{
		"note/install.d/50-note*": "#!/bin/sh\nset -e\necho \"$DIB_IMAGE_NOTE\" > /etc/note\n",
	})
}

// Two images from one file, one of them defined twice and merged: each
// is built with its own settings and environment, one after the other.
func TestDiskimageBuilderBuildsEachImage(t *testing.T) {
	needVM(t)
	dir := t.TempDir()
	defs := writeYAML(t, `
- imagename: `+dir+`/one
  elements: [tiny-os]
  types: [tar]
  skip-base: true
  environment: {DIB_IMAGE_NOTE: first}
- imagename: `+dir+`/two
  elements: [tiny-os, note]
  types: [tar]
  skip-base: true
  environment: {DIB_IMAGE_NOTE: "image two"}
- imagename: `+dir+`/one
  elements: [note]
  environment: {DIB_IMAGE_NOTE: "image one"}
`)
	env := []string{"ELEMENTS_PATH=" + testElements(t) + ":" + noteElement(t)}
	r := dibvm(t, env, 10*time.Minute, "build", "--progress", "plain", defs)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, tail(r.stdout, 20), r.stderr)
	}
	t.Logf("two images built in %s", r.took)
	for _, c := range []struct{ name, note string }{{"one", "image one\n"}, {"two", "image two\n"}} {
		if got := readTar(t, filepath.Join(dir, c.name+".tar"))["etc/note"]; got != c.note {
			t.Errorf("%s.tar: /etc/note is %q, want %q", c.name, got, c.note)
		}
	}
	// diskimage-builder's account of what it runs, each before it runs.
	want := "DIB_IMAGE_NOTE='image one' disk-image-create -o " + dir + "/one -t tar -n tiny-os note\n"
	if !strings.Contains(r.stderr, want) || strings.Index(r.stderr, "disk-image-create -o "+dir+"/two") < strings.Index(r.stderr, want) {
		t.Errorf("stderr does not show the merged image one, then two:\n%s", r.stderr)
	}
}

// The file's problems, and each image's, are found before anything
// boots, all at once; nothing is written.
func TestDiskimageBuilderRefusesBeforeBoot(t *testing.T) {
	dir := t.TempDir()
	runs, env := runDir(t)
	env = append(env, "ELEMENTS_PATH="+testElements(t))
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{{
		"unknown key", "- imagename: " + dir + "/a\n  elements: [tiny-os]\n  image_size: 3\n",
		[]string{`images.yaml:3: unknown key "image_size" in image definition 1; diskimage-builder's keys are imagename,`},
	}, {
		"every image's problems", `
- imagename: ` + dir + `/a
  elements: [tiny-os]
  types: [tar]
  skip-base: true
- imagename: ` + dir + `/b
  elements: [tiny-os, no-such-element]
  types: [tar]
- imagename: ` + dir + `/c
  types: [tar]
- imagename: ` + dir + `/d
  ramdisk: true
  elements: [tiny-os]
`, []string{
			"images.yaml:6: image " + dir + "/b: element no-such-element not found in ELEMENTS_PATH",
			"images.yaml:9: image " + dir + "/c: elements: give the image's elements",
			"images.yaml:11: image " + dir + "/d: ramdisk: true asks for ramdisk-image-create, which dibvm does not have",
		},
	}, {
		"a create flag's check", "- imagename: " + dir + "/a\n  elements: [tiny-os]\n  qemu-img-options: {compat: \"9.9\"}\n",
		[]string{"images.yaml:1: image " + dir + "/a: --qemu-img-options compat=9.9:"},
	}} {
		t.Run(c.name, func(t *testing.T) {
			r := dibvm(t, env, time.Minute, "build", writeYAML(t, c.yaml))
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if r.code != 2 || strings.Contains(r.stderr, "disk-image-create -o") {
				t.Errorf("exit %d, want 2 with nothing run:\n%s", r.code, r.stderr)
			}
		})
	}
	if left := entries(t, dir); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if left := entries(t, runs); len(left) > 0 {
		t.Errorf("run directories left behind: %v", left)
	}
}

// --dry-run prints each merged image's command as diskimage-builder
// does, and builds nothing; under its own name dibvm is
// diskimage-builder.
func TestDiskimageBuilderDryRun(t *testing.T) {
	defs := writeYAML(t, `
- imagename: img
  elements: [vm, debian-minimal]
  environment: {DIB_RELEASE: bookworm}
- types: [qcow2, tar]
  packages: [vim, less]
  checksum: true
- imagename: other
  arch: amd64
  debug-trace: 2
  qemu-img-options: {compat: "0.10"}
  elements: [vm, debian-minimal]
- imagename: img
  environment: {DIB_RELEASE: trixie, DIB_DEBIAN_COMPONENTS: "main contrib"}
`)
	want := "DIB_RELEASE=trixie DIB_DEBIAN_COMPONENTS='main contrib' disk-image-create -o img -t qcow2,tar --checksum -p vim,less vm debian-minimal\n\n" +
		"disk-image-create -o other -a amd64 -x -x --qemu-img-options compat=0.10 vm debian-minimal\n\n"
	link := filepath.Join(t.TempDir(), "diskimage-builder")
	if err := os.Symlink(dibvmBin, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, "--dry-run", defs)
	cmd.Dir = t.TempDir()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.String() != want {
		t.Errorf("diskimage-builder --dry-run: %v\n got %q\nwant %q", err, stderr.String(), want)
	}
	if left := entries(t, cmd.Dir); len(left) > 0 {
		t.Errorf("a dry run wrote %v", left)
	}
	r := dibvm(t, nil, time.Minute, "build", "--dry-run", defs)
	if r.code != 0 || r.stderr != want {
		t.Errorf("dibvm build --dry-run: exit %d\n got %q\nwant %q", r.code, r.stderr, want)
	}
}

// A failed image does not stop the next unless --stop-on-failure; dibvm
// exits 1 naming the images that failed. (A boot that may take no time
// fails each image at once.)
func TestDiskimageBuilderStopOnFailure(t *testing.T) {
	needVM(t)
	dir := t.TempDir()
	runs, env := runDir(t)
	env = append(env, "ELEMENTS_PATH="+testElements(t))
	defs := writeYAML(t, `
- imagename: `+dir+`/a
  elements: [tiny-os]
  types: [tar]
  skip-base: true
- imagename: `+dir+`/b
  elements: [tiny-os]
  types: [tar]
  skip-base: true
`)
	for _, c := range []struct {
		flags []string
		want  string
		ran   int
	}{
		{nil, "2 of 2 images failed: " + dir + "/a, " + dir + "/b", 2},
		{[]string{"--stop-on-failure"}, "--stop-on-failure: 1 more image(s) not built\ndibvm: 1 of 2 images failed: " + dir + "/a\n", 1},
	} {
		args := append(append([]string{"build", "--boot-timeout", "1ms"}, c.flags...), defs)
		r := dibvm(t, env, 2*time.Minute, args...)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) || strings.Count(r.stderr, "disk-image-create -o") != c.ran {
			t.Errorf("%v: exit %d, want 1, %d images tried and %q:\n%s", c.flags, r.code, c.ran, c.want, r.stderr)
		}
		waitNoQEMU(t, runs, 30*time.Second)
	}
	if left := entries(t, dir); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
