package outputs

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Two conversions of the same raw image, a second apart, into different
// directories under different temporary names, are the same bytes once
// pinned, in every format; qemu-img still reads each as the raw image;
// and another seed or epoch changes them.
func TestPinnedConversionsAreIdentical(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	raw := filepath.Join(t.TempDir(), "disk.raw")
	data := make([]byte, 6<<20)
	rand.Read(data[:3<<20]) // half data, half zeros
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	pinned := &Pinned{Epoch: 1735689600, Seed: "a seed"}
	convertOnce := func(format, ext string, p *Pinned) []byte {
		dir := t.TempDir()
		tmp, err := os.CreateTemp(dir, ".img-*.tmp")
		if err != nil {
			t.Fatal(err)
		}
		defer tmp.Close()
		if err := convert(context.Background(), raw, tmp.Name(), format, Options{Pinned: p}); err != nil {
			t.Fatal(err)
		}
		if err := pinFormat(tmp, format, "img."+ext, p); err != nil {
			t.Fatalf("pin %s: %v", format, err)
		}
		if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", format, raw, tmp.Name()).CombinedOutput(); err != nil {
			t.Errorf("qemu-img compare raw %s after pinning: %v\n%s", format, err, out)
		}
		if format != "vpc" {
			if out, err := exec.Command("qemu-img", "check", "-f", format, tmp.Name()).CombinedOutput(); err != nil {
				t.Errorf("qemu-img check %s after pinning: %v\n%s", format, err, out)
			}
		}
		b, err := os.ReadFile(tmp.Name())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, f := range []struct{ format, ext string }{{"qcow2", "qcow2"}, {"vpc", "vhd"}, {"vhdx", "vhdx"}, {"vmdk", "vmdk"}} {
		first := convertOnce(f.format, f.ext, pinned)
		time.Sleep(1100 * time.Millisecond) // a new second for the time stamps
		if second := convertOnce(f.format, f.ext, pinned); !bytes.Equal(first, second) {
			t.Errorf("%s: two pinned conversions differ", f.ext)
		}
		if f.format == "qcow2" {
			continue // it carries neither
		}
		if other := convertOnce(f.format, f.ext, &Pinned{Epoch: pinned.Epoch, Seed: "another"}); bytes.Equal(first, other) {
			t.Errorf("%s: another seed gave the same bytes", f.ext)
		}
		if f.format == "vhdx" && bytes.Contains(first[:520], []byte("Q\x00E\x00M\x00U")) {
			t.Errorf("vhdx: qemu-img's version is still the creator")
		}
		if f.format == "vmdk" && !bytes.Contains(first, []byte(`SPARSE "img.vmdk"`)) {
			t.Errorf("vmdk: the extent is not named for the output")
		}
	}
}

// qemu-img rewrites a vmdk's descriptor in place, at times shorter than
// it was, and what followed its end is still there: pinned, two such
// images are the same bytes.
func TestPinVMDKIgnoresWhatFollowsItsDescriptor(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, bytes.Repeat([]byte("data"), 1<<18), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Pinned{Epoch: 1735689600, Seed: "a seed"}
	pinned := func(residue string) []byte {
		f, err := os.CreateTemp(dir, ".img-*.tmp")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := convert(context.Background(), raw, f.Name(), "vmdk", Options{Pinned: p}); err != nil {
			t.Fatal(err)
		}
		desc := make([]byte, 10<<10)
		if _, err := f.ReadAt(desc, 512); err != nil {
			t.Fatal(err)
		}
		end := bytes.IndexByte(desc, 0)
		if _, err := f.WriteAt([]byte(residue), int64(512+end+1)); err != nil {
			t.Fatal(err)
		}
		if err := pinFormat(f, "vmdk", "img.vmdk", p); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(pinned(""), pinned("7\"\n")) {
		t.Error("what followed the descriptor's end is still in the pinned image")
	}
}
