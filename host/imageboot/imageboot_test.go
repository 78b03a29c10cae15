package imageboot

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/libvirt"
)

// disk makes a raw disk of 64 MiB with the partition table sfdisk makes
// from script, converted to format with qemu-img.
func disk(t *testing.T, script, format string) string {
	t.Helper()
	for _, tool := range []string{"sfdisk", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (scripts/install-deps.sh installs it)", tool, err)
		}
	}
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(raw, 64<<20)
	if script != "" {
		cmd := exec.Command("sfdisk", "-q", raw)
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sfdisk: %v: %s", err, out)
		}
	}
	if format == "raw" {
		return raw
	}
	img := filepath.Join(dir, "disk."+format)
	if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", format, raw, img).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	return img
}

func TestInspectFindsTheESP(t *testing.T) {
	for _, tc := range []struct {
		name, script, format string
		esp                  bool
	}{
		{"gpt with an ESP", "label: gpt\nsize=8M, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n", "qcow2", true},
		{"gpt, ESP second", "label: gpt\nsize=1M, type=21686148-6461-6E6F-744F-746E65656246\nsize=8M, type=U\ntype=L\n", "vmdk", true},
		{"gpt without", "label: gpt\nsize=1M, type=21686148-6461-6E6F-744F-746E65656246\ntype=L\n", "qcow2", false},
		{"mbr with an ESP", "label: dos\nsize=8M, type=ef\ntype=83\n", "raw", true},
		{"mbr without", "label: dos\ntype=83, bootable\n", "vpc", false},
		{"no partition table", "", "qcow2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := disk(t, tc.script, tc.format)
			d, err := Inspect(context.Background(), img)
			if err != nil {
				t.Fatal(err)
			}
			if d.ESP != tc.esp || d.Size < 64<<20 { // vpc rounds up to its geometry
				t.Errorf("%+v, want ESP %v and at least 64 MiB", d, tc.esp)
			}
		})
	}
}

func TestInspectRefuses(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("not a disk"), 0o644)
	base := disk(t, "label: dos\ntype=83\n", "qcow2")
	overlay := filepath.Join(dir, "overlay.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// Images that name other files for QEMU to open.
	dataFile := filepath.Join(dir, "external.qcow2")
	split := filepath.Join(dir, "split.vmdk")
	for _, args := range [][]string{
		{"create", "-q", "-f", "qcow2", "-o", "data_file=" + filepath.Join(dir, "host-secret"), dataFile, "1M"},
		{"create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", split, "1M"},
	} {
		if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v: %s", args, err, out)
		}
	}
	// A raw image (the guest's bytes) that looks like a qcow2 is read as
	// raw: its name says what it is.
	disguised := filepath.Join(dir, "disguised.raw")
	if b, err := os.ReadFile(dataFile); err == nil {
		os.WriteFile(disguised, b, 0o644)
	}
	if d, err := Inspect(context.Background(), disguised); err != nil || d.Format != "raw" {
		t.Errorf("Inspect(disguised.raw) = %+v, %v: want it read as raw", d, err)
	}
	iso := filepath.Join(dir, "x.dmg")
	os.WriteFile(iso, append([]byte("QFI\xfb"), make([]byte, 100)...), 0o644) // a broken qcow2 header
	for _, tc := range []struct{ image, want string }{
		{filepath.Join(dir, "missing.qcow2"), "qemu-img cannot read it"},
		{overlay, "it is an overlay on " + base},
		{dataFile, "its data is in another file, " + filepath.Join(dir, "host-secret")},
		{split, "a twoGbMaxExtentSparse VMDK, whose extents are other files"},
		{iso, "qemu-img cannot read it"},
	} {
		if _, err := Inspect(context.Background(), tc.image); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Inspect(%s) = %v, want %q", filepath.Base(tc.image), err, tc.want)
		}
	}
	// A text file is a raw disk to qemu-img: it has no partition table.
	if d, err := Inspect(context.Background(), text); err != nil || d.ESP {
		t.Errorf("Inspect(notes.txt) = %+v, %v", d, err)
	}
}

// relayRule is the rule StartProxy makes, for a dibvm at a path with a
// comma.
var relayRule = egress.GuestfwdRule("/opt/dib,vm/dibvm", "/tmp/boot/egress.sock")

func TestCommand(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatalf("%v (scripts/install-deps.sh installs it)", err)
	}
	base := Options{Image: "/imgs/a,b.qcow2", Arch: "amd64", Accel: "tcg", Memory: 1024, CPUs: 2, Network: "nat"}
	for _, tc := range []struct {
		name     string
		change   func(*Options)
		disk     Disk
		uefi     bool
		want     []string
		wantNot  []string
		errorHas string
	}{
		{"bios, snapshot, single-threaded TCG", nil, Disk{Format: "qcow2"}, false,
			[]string{"-accel tcg,thread=single", "-cpu max", "-drive file=/imgs/a,,b.qcow2,if=virtio,format=qcow2,snapshot=on", "-netdev user,id=n0 ", "-serial chardev:s0", "-mon chardev=s0"},
			[]string{"pflash", "hostfwd", "restrict"}, ""},
		{"uefi for an ESP, persist, ssh", func(o *Options) { o.Persist, o.SSHPort = true, 2222 }, Disk{Format: "raw", ESP: true}, true,
			[]string{"if=pflash,format=raw,unit=0,readonly=on", "if=pflash,format=raw,unit=1,snapshot=on", "format=raw -device", "hostfwd=tcp:127.0.0.1:2222-:22"},
			[]string{"snapshot=on -device virtio-rng"}, ""},
		{"uefi asked for", func(o *Options) { o.Firmware = "uefi" }, Disk{Format: "qcow2"}, true, []string{"pflash"}, nil, ""},
		{"bios asked for", func(o *Options) { o.Firmware = "bios" }, Disk{Format: "qcow2", ESP: true}, false, nil, []string{"pflash"}, ""},
		{"restricted", func(o *Options) { o.Network, o.SSHPort = "restricted", 22022 }, Disk{Format: "qcow2"}, false,
			[]string{"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:22022-:22"}, []string{"guestfwd"}, ""},
		// The default: the egress proxy alone, as for a build.
		{"proxy", func(o *Options) { o.Network, o.SSHPort, o.guestfwd = "proxy", 22022, relayRule }, Disk{Format: "qcow2"}, false,
			[]string{"-netdev user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:3128-cmd:'/opt/dib,,vm/dibvm' __dibvm-egress-relay '/tmp/boot/egress.sock',hostfwd=tcp:127.0.0.1:22022-:22 "},
			nil, ""},
		{"proxy by default", func(o *Options) { o.Network, o.guestfwd = "", relayRule }, Disk{Format: "qcow2"}, false,
			[]string{"-netdev user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:3128-cmd:"}, []string{"hostfwd"}, ""},
		{"proxy not started", func(o *Options) { o.Network = "" }, Disk{Format: "qcow2"}, false, nil, nil, "the egress proxy is not running"},
		{"no network", func(o *Options) { o.Network = "none" }, Disk{Format: "qcow2"}, false, nil, []string{"-netdev", "virtio-net"}, ""},
		{"console to a file", func(o *Options) { o.Console = "/tmp/c.log" }, Disk{Format: "qcow2"}, false,
			[]string{"-chardev file,id=s0,path=/tmp/c.log"}, []string{"stdio", "-mon"}, ""},
		{"a hypervisor", func(o *Options) { o.Accel = "kvm" }, Disk{Format: "qcow2"}, false, []string{"-accel kvm -cpu host"}, []string{"thread"}, ""},
		{"ssh without a network", func(o *Options) { o.Network, o.SSHPort = "none", 2222 }, Disk{Format: "qcow2"}, false, nil, nil, "--ssh needs a network"},
		{"bad firmware", func(o *Options) { o.Firmware = "coreboot" }, Disk{Format: "qcow2"}, false, nil, nil, "--firmware coreboot"},
		{"arm64 bios", func(o *Options) { o.Arch, o.Firmware = "arm64", "bios" }, Disk{Format: "qcow2"}, false, nil, nil, "UEFI only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			if tc.change != nil {
				tc.change(&o)
			}
			_, args, uefi, err := Command(o, tc.disk)
			if tc.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errorHas) {
					t.Fatalf("err %v, want %q", err, tc.errorHas)
				}
				return
			}
			if err != nil {
				if strings.Contains(err.Error(), "no UEFI firmware") {
					t.Fatalf("%v (scripts/install-deps.sh installs it)", err)
				}
				t.Fatal(err)
			}
			line := strings.Join(args, " ") + " "
			if uefi != tc.uefi {
				t.Errorf("uefi %v, want %v", uefi, tc.uefi)
			}
			checkHas(t, "the command line", line, tc.want, tc.wantNot)
		})
	}
}

func TestDomain(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatalf("%v (scripts/install-deps.sh installs it)", err)
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "img.raw")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "raw", img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	base := Options{Image: img, Arch: "amd64", Accel: "tcg", Memory: 1024, CPUs: 2, Network: "nat", Backend: new(libvirt.Conn)}
	for _, tc := range []struct {
		name    string
		change  func(*Options)
		disk    Disk
		want    []string
		wantNot []string
	}{
		{"bios, overlay, console socket", nil, Disk{Format: "raw"},
			[]string{`<domain type="qemu"`, `<type arch="x86_64" machine="pc">hvm</type>`, `<cpu mode="maximum"`, `<acpi>`,
				`<driver name="qemu" type="qcow2">`, `<source file="` + filepath.Join(dir, "run", "overlay.qcow2") + `">`,
				`<backingStore type="file"><format type="raw"></format><source file="` + img + `"></source><backingStore></backingStore></backingStore>`,
				`<source mode="bind" path="` + filepath.Join(dir, "run", "console.sock") + `">`,
				`<arg value="-netdev"></arg><arg value="user,id=n0"></arg><arg value="-device"></arg><arg value="virtio-net-pci,netdev=n0,romfile=,addr=0x1e"></arg>`,
				`<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>`},
			[]string{"<loader", "<nvram", "<interface"}},
		{"uefi for an ESP, persist, console file, restricted with ssh",
			func(o *Options) { o.Persist, o.Console, o.Network, o.SSHPort = true, "/tmp/c.log", "restricted", 2222 },
			Disk{Format: "raw", ESP: true},
			[]string{`<loader readonly="yes" type="pflash">`, `<nvram template="`, `>` + filepath.Join(dir, "run", "vars.fd") + `</nvram>`,
				`<driver name="qemu" type="raw">`, `<source file="` + img + `">`, `<source path="/tmp/c.log">`,
				`<arg value="user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22">`},
			[]string{"overlay.qcow2", "backingStore", "console.sock"}},
		{"no network", func(o *Options) { o.Network = "none" }, Disk{Format: "raw"}, nil, []string{"commandline", "netdev"}},
		{"nat, open", func(o *Options) { o.Network, o.SSHPort = "nat", 2222 }, Disk{Format: "raw"},
			[]string{`<arg value="user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22"></arg>`}, []string{"restrict", "guestfwd"}},
		{"a hypervisor", func(o *Options) { o.Accel = "kvm" }, Disk{Format: "raw"}, []string{`<domain type="kvm"`, `<cpu mode="host-passthrough"`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			if tc.change != nil {
				tc.change(&o)
			}
			run := filepath.Join(dir, "run")
			os.RemoveAll(run)
			os.Mkdir(run, 0o755)
			m, err := machine(o, tc.disk, run)
			if err != nil {
				if strings.Contains(err.Error(), "no UEFI firmware") {
					t.Fatalf("%v (scripts/install-deps.sh installs it)", err)
				}
				t.Fatal(err)
			}
			x, err := libvirt.DomainXML(m, "")
			if err != nil {
				t.Fatal(err)
			}
			x = regexp.MustCompile(`>\s+<`).ReplaceAllString(x, "><")
			checkHas(t, "the domain", x, tc.want, tc.wantNot)
			// The overlay is a qcow2 on the image, as QEMU's snapshot=on is.
			if !o.Persist {
				out, err := exec.Command("qemu-img", "info", "--output=json", filepath.Join(run, "overlay.qcow2")).Output()
				if err != nil || !strings.Contains(string(out), `"backing-filename": "`+img+`"`) {
					t.Errorf("the overlay: %v\n%s", err, out)
				}
			}
		})
	}
}

// checkHas says which of want text lacks and which of wantNot it has.
func checkHas(t *testing.T, what, text string, want, wantNot []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %s:\n%s", what, w, text)
		}
	}
	for _, w := range wantNot {
		if strings.Contains(text, w) {
			t.Errorf("%s has %s:\n%s", what, w, text)
		}
	}
}

// Through libvirt there is no proxy network: its QEMU cannot start the
// relay. Asked for, by name or by default, it is refused, never opened
// wider.
func TestDomainRefusesTheProxy(t *testing.T) {
	for _, network := range []string{"proxy", ""} {
		o := Options{Image: "/imgs/a.raw", Arch: "amd64", Accel: "tcg", Memory: 1024, CPUs: 1, Network: network, guestfwd: relayRule, Backend: new(libvirt.Conn)}
		if _, err := machine(o, Disk{Format: "raw"}, t.TempDir()); !errors.Is(err, ErrLibvirtProxy) {
			t.Errorf("network %q: %v, want ErrLibvirtProxy", network, err)
		}
	}
}
