package imagedef

import (
	"reflect"
	"strings"
	"testing"
)

func images(t *testing.T, files ...string) []Image {
	t.Helper()
	var defs []Definition
	for i, f := range files {
		d, err := Read("f"+string(rune('1'+i))+".yaml", []byte(f))
		if err != nil {
			t.Fatal(err)
		}
		defs = append(defs, d...)
	}
	return Merge(defs)
}

// The cases of DIB's own tests (diskimage_builder/tests/
// test_diskimage_builder.py), as YAML.
func TestArgsAsDIB(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       [][]string
	}{{
		"simple", `
- imagename: centos-minimal
  elements: [centos, vm]
`, [][]string{{"-o", "centos-minimal", "centos", "vm"}},
	}, {
		"merged", `
- imagename: centos-minimal
  elements: [centos, vm]
  environment: {foo: bar, zip: zap}
- elements: [devuser]
  logfile: centos-minimal.log
- imagename: centos-minimal
  environment: {foo: baz, one: two}
`, [][]string{{"-o", "centos-minimal", "--logfile", "centos-minimal.log", "centos", "vm", "devuser"}},
	}, {
		"no imagename is DIB's default", `
- elements: [vm]
- elements: [devuser]
  types: [raw]
`, [][]string{{"-t", "raw", "vm", "devuser"}},
	}, {
		"every option", `
- arch: amd64
  imagename: everyoption
  types: [qcow2]
  debug-trace: 2
  uncompressed: true
  clear: true
  logfile: ./logfile.log
  checksum: true
  image-size: 40
  image-extra-size: 1
  image-cache: ~/.cache/dib
  max-online-resize: 1000
  min-tmpfs: 7
  mkfs-journal-size: 1
  mkfs-options: -D
  no-tmpfs: true
  offline: true
  qemu-img-options: {size: "10"}
  ramdisk-element: dracut-ramdisk
  install-type: package
  root-label: root
  docker-target: everyoption:latest
  packages: [wget, tmux]
  skip-base: true
  elements: [centos, vm]
`, [][]string{{"-o", "everyoption", "-a", "amd64", "-t", "qcow2", "-x", "-x", "-u", "-c",
			"--logfile", "./logfile.log", "--checksum", "--image-size", "40", "--image-extra-size", "1",
			"--image-cache", "~/.cache/dib", "--max-online-resize", "1000", "--min-tmpfs", "7",
			"--mkfs-journal-size", "1", "--mkfs-options", "-D", "--no-tmpfs", "--offline",
			"--qemu-img-options", "size=10", "--root-label", "root", "--ramdisk-element", "dracut-ramdisk",
			"--install-type", "package", "--docker-target", "everyoption:latest", "-p", "wget,tmux", "-n",
			"centos", "vm"}},
	}} {
		t.Run(c.name, func(t *testing.T) {
			var got [][]string
			for _, im := range images(t, c.yaml) {
				got = append(got, im.Args)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}

// The lines diskimage-builder prints, from DIB's own code run on the
// same definitions (with bash /LIB/disk-image-create, and '"'"' for a
// quote in quotes, where dibvm prints disk-image-create and '\”).
func TestDryRunLines(t *testing.T) {
	got := images(t, `
- imagename: centos-minimal
  elements: [centos, vm]
  environment: {foo: bar, zip: "a b"}
- elements: [devuser]
  logfile: centos-minimal.log
- imagename: second
  types: [tar, raw]
  debug-trace: 1
  qemu-img-options: {compat: "0.10", size: "10"}
`, `
- imagename: centos-minimal
  environment: {foo: baz, one: "it's"}
  checksum: true
  uncompressed: false
- imagename: third
  ramdisk: true
  elements: [ironic-python-agent-ramdisk]
`)
	want := []string{
		`foo=baz zip='a b' one='it'\''s' disk-image-create -o centos-minimal --logfile centos-minimal.log --checksum centos vm devuser`,
		`disk-image-create -o second -t tar,raw -x --qemu-img-options compat=0.10,size=10`,
		`ramdisk-image-create -o third ironic-python-agent-ramdisk`,
	}
	if len(got) != len(want) {
		t.Fatalf("%d images, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("image %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	if got[0].Where != "f1.yaml:2" || got[2].Where != "f2.yaml:6" || !got[2].Ramdisk {
		t.Errorf("where: %s, %s; ramdisk %v", got[0].Where, got[2].Where, got[2].Ramdisk)
	}
	env := got[0].Environ([]string{"PATH=/bin", "foo=host", "HOME=/h"})
	if w := []string{"foo=baz", "zip=a b", "one=it's", "PATH=/bin", "HOME=/h"}; !reflect.DeepEqual(env, w) {
		t.Errorf("environ %q, want %q", env, w)
	}
}

// What DIB's JSON schema refuses is refused, naming the file, the line
// and the key.
func TestReadRefuses(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"- imagename: a\n  element: [vm]\n", `f.yaml:2: unknown key "element" in image definition 1; diskimage-builder's keys are imagename, arch,`},
		{"- imagename: a\n- imagename: b\n  image_size: 3\n", `f.yaml:3: unknown key "image_size" in image definition 2`},
		{"- imagename: 12\n", "f.yaml:1: imagename: give a string, not int"},
		{"- types: [qcow2, iso]\n", `f.yaml:1: types: "iso" is none of qcow2, tar,`},
		{"- types: qcow2\n", "f.yaml:1: types: give a list of strings"},
		{"- image-size: 0\n", "f.yaml:1: image-size: 0: give at least 1"},
		{"- image-size: 2.5\n", "f.yaml:1: image-size: give an integer, not float"},
		{"- debug-trace: 3\n", "f.yaml:1: debug-trace: 3: give 0 to 2"},
		{"- checksum: yes\n", "f.yaml:1: checksum: give true or false, not str"},
		{"- environment: {DIB_RELEASE: 12}\n", `f.yaml:1: environment: DIB_RELEASE: give a map of names to strings, not int (quote it: DIB_RELEASE: "12")`},
		{"- arch: sparc\n", `f.yaml:1: arch: "sparc" is none of`},
		{"- install-type: rpm\n", `install-type: "rpm" is none of source, package`},
		{"- imagename: a\n  imagename: b\n", `f.yaml:2: key "imagename" is set twice`},
		{"imagename: a\n", "f.yaml:1: is not a list"},
		{"- vm\n", "f.yaml:1: image definition 1 is not a map"},
		{"", "f.yaml: holds no image definitions"},
		{"- imagename: a\n---\n- imagename: b\n", "f.yaml:2: a second YAML document"},
		{"- imagename: [\n", "f.yaml: yaml:"},
	} {
		_, err := Read("f.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.yaml, err, c.want)
		}
	}
}

// YAML anchors and aliases read as the values they name, as PyYAML
// reads them.
func TestAliases(t *testing.T) {
	got := images(t, `
- imagename: a
  elements: &common [vm, debian-minimal]
  environment: &env {DIB_RELEASE: trixie}
- imagename: b
  elements: *common
  environment: *env
`)
	if len(got) != 2 || got[1].String() != "DIB_RELEASE=trixie disk-image-create -o b vm debian-minimal" {
		t.Errorf("got %v", got)
	}
}
