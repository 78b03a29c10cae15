package machine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/vmimage"
)

// The floor follows the appliance's initramfs: two copies of it and the
// kernel's own room, and a size below it is refused naming --memory.
func TestCheckMemoryFollowsTheInitramfs(t *testing.T) {
	initrd := filepath.Join(t.TempDir(), "initrd.img")
	if err := os.WriteFile(initrd, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(initrd, 200<<20+1); err != nil {
		t.Fatal(err)
	}
	app := &vmimage.Appliance{Initrd: initrd}
	least, err := MinMemoryMiB(app)
	if want := 2*201 + bootOverheadMiB; err != nil || least != want {
		t.Fatalf("MinMemoryMiB = %d, %v; want %d", least, err, want)
	}
	if err := checkMemory(Options{Appliance: app, Memory: least}); err != nil {
		t.Errorf("at the floor: %v", err)
	}
	err = checkMemory(Options{Appliance: app, Memory: 512})
	if err == nil || !strings.Contains(err.Error(), "--memory 512") || !strings.Contains(err.Error(), "at least 722 MiB") {
		t.Errorf("below the floor: %v", err)
	}
	if err := checkMemory(Options{Appliance: &vmimage.Appliance{Initrd: initrd + ".gone"}, Memory: 4096}); err == nil {
		t.Error("a missing appliance passed")
	}
}

// A tool layer raises the floor by two copies of its archive: the
// layered initrd is the plain one with the layer's cpio appended.
func TestMemoryFloorCountsLayers(t *testing.T) {
	dir := t.TempDir()
	sized := func(name string, size int64) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := &vmimage.Appliance{Initrd: sized("plain.img", 187<<20)}
	layered := &vmimage.Appliance{Initrd: sized("layered.img", (187+83)<<20), Layers: []*vmimage.LayerManifest{{Layer: vmimage.Layer{Name: "rpm"}}}}
	p, err := MinMemoryMiB(plain)
	if err != nil {
		t.Fatal(err)
	}
	l, err := MinMemoryMiB(layered)
	if err != nil {
		t.Fatal(err)
	}
	if l-p != 2*83 {
		t.Errorf("the floor rose by %d MiB with an 83 MiB layer, want %d", l-p, 2*83)
	}
	if err := checkMemory(Options{Appliance: layered, Memory: p}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("its appliance (with the rpm tool layer) in memory and needs at least %d MiB", l)) {
		t.Errorf("the plain appliance's floor with the layer: %v", err)
	}
}
