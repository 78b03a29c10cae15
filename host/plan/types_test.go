package plan

import (
	"slices"
	"testing"

	"github.com/dibvm/dibvm/host/diskformat"
)

// Every disk image type the build converts to is one -t accepts, and the
// build makes a disk for it.
func TestDiskFormatsAreSupported(t *testing.T) {
	for _, f := range diskformat.All {
		if !slices.Contains(Supported, f.Type) {
			t.Errorf("disk image type %s is not in Supported %q", f.Type, Supported)
		}
		if !diskformat.WantsDisk([]string{f.Type}) {
			t.Errorf("-t %s makes no disk", f.Type)
		}
	}
	for _, typ := range []string{"tar", "tgz", "squashfs", "docker"} {
		if diskformat.WantsDisk([]string{typ}) {
			t.Errorf("-t %s alone makes a disk", typ)
		}
	}
}
