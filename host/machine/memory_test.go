package machine

import (
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
