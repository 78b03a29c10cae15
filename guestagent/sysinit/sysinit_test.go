package sysinit

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
)

// TestKernelMountsOrder: no filesystem is mounted below one mounted after
// it, which would hide it (devpts on /dev/pts, then devtmpfs on /dev).
func TestKernelMountsOrder(t *testing.T) {
	mounted := map[string]bool{}
	for i, m := range kernelMounts {
		for _, later := range kernelMounts[i+1:] {
			if strings.HasPrefix(m.target, later.target+"/") {
				t.Errorf("%s on %s is hidden by %s on %s, mounted after it", m.fstype, m.target, later.fstype, later.target)
			}
		}
		if mounted[m.target] {
			t.Errorf("%s is mounted twice", m.target)
		}
		mounted[m.target] = true
	}
	for _, target := range []string{"/proc", "/sys", "/dev", "/dev/pts", "/run"} {
		if !mounted[target] {
			t.Errorf("nothing is mounted on %s", target)
		}
	}
}

func TestReadModuleList(t *testing.T) {
	got, err := readModuleList(strings.NewReader("virtio_pci\n\n# the input disk\n  isofs  \r\n\t\n#virtio_net\nvirtio_blk"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"virtio_pci", "isofs", "virtio_blk"}; !reflect.DeepEqual(got, want) {
		t.Errorf("readModuleList = %q, want %q", got, want)
	}
	if got, err := readModuleList(strings.NewReader("")); err != nil || got != nil {
		t.Errorf("an empty list: %q, %v", got, err)
	}
}

// sysBlock makes a /sys/block with disks of the given serials.
func sysBlock(t *testing.T, serials map[string]string) string {
	dir := t.TempDir()
	for disk, serial := range serials {
		if err := os.MkdirAll(filepath.Join(dir, disk), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, disk, "serial"), []byte(serial), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFindDisk(t *testing.T) {
	dir := sysBlock(t, map[string]string{"vda": "dibvm-input\n", "vdb": "dibvm-output", "vdc": "dibvm-inputs"})
	if err := os.MkdirAll(filepath.Join(dir, "sr0"), 0o755); err != nil { // no serial at all
		t.Fatal(err)
	}
	for serial, want := range map[string]string{"dibvm-input": "/dev/vda", "dibvm-output": "/dev/vdb"} {
		if got, err := findDisk(dir, serial, time.Second); err != nil || got != want {
			t.Errorf("findDisk(%s) = %s, %v; want %s", serial, got, err, want)
		}
	}
	start := time.Now()
	_, err := findDisk(dir, "dibvm-scratch", 200*time.Millisecond)
	if err == nil || err.Error() != `no disk with serial "dibvm-scratch" after 200ms` {
		t.Errorf("a disk that is not there: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("gave up after %s, before the timeout", d)
	}
}

// A disk that appears while findDisk waits is found.
func TestFindDiskWaits(t *testing.T) {
	dir := sysBlock(t, nil)
	go func() {
		time.Sleep(100 * time.Millisecond)
		os.MkdirAll(filepath.Join(dir, "vdd"), 0o755)
		os.WriteFile(filepath.Join(dir, "vdd", "serial"), []byte("late"), 0o644)
	}()
	if got, err := findDisk(dir, "late", 5*time.Second); err != nil || got != "/dev/vdd" {
		t.Errorf("findDisk of a disk that came late: %s, %v", got, err)
	}
}

func TestProxyHostAddr(t *testing.T) {
	host, addr, err := proxyHostAddr(&api.Network{Proxy: "http://10.0.2.100:3128", Forwarded: true})
	if err != nil || host != "10.0.2.100" || addr.String() != "10.0.2.100/32" {
		t.Errorf("proxyHostAddr = %s, %v, %v; want 10.0.2.100/32", host, addr, err)
	}
	for _, proxy := range []string{"http://10.0.2.100", "http://proxy.invalid:3128", ""} {
		if _, _, err := proxyHostAddr(&api.Network{Proxy: proxy}); err == nil || !strings.HasPrefix(err.Error(), `proxy "`+proxy+`": `) {
			t.Errorf("proxy %q: %v", proxy, err)
		}
	}
}
