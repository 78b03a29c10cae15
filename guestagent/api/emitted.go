package api

import (
	"fmt"
	"strings"
)

// Hooks that run outside the chroot write files beside the image, as
// DIB's baremetal, ramdisk-base, iso and keylime-agent elements do:
// ${IMAGE_NAME}.vmlinuz, ${IMAGE_NAME}.initramfs, ${IMAGE_NAME}-boot.iso,
// ${IMAGE_NAME}-allowlist.txt. In the guest IMAGE_NAME is a path in a
// directory of the build's own; what the hooks leave there comes back to
// the host on the output disk, after the other outputs, and is put
// beside the image under the same name. Both sides hold it to the
// bounds below: the guest to name the file and the phase that wrote it,
// the host because the guest is not trusted.

// EmittedFile is a file hooks wrote beside the image, on the output disk.
type EmittedFile struct {
	// Name is the file's name: the image's name, then '.' or '-' and a
	// suffix (see CheckEmittedName).
	Name string `json:"name"`
	// Phase is the phase after which the build first saw the file.
	Phase  string `json:"phase"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

// Bounds on the files hooks emit: a kernel and an initramfs of a few
// hundred MiB, an ISO of them, and a few small records fit with room
// to spare.
const (
	MaxEmittedFiles = 32
	MaxEmittedFile  = 4 << 30 // bytes, each
	MaxEmittedTotal = 8 << 30 // bytes, all together
	// maxEmittedName is the longest name most filesystems take.
	maxEmittedName = 255
)

// CheckEmittedName says whether name may come back beside the image
// image (the output's name without directory or type): it must be
// image, then '.' or '-' and a suffix of letters, digits and ". _ + - ~
// @ =", with no ".." in it. So it names a file in the image's own
// directory and nothing else, and shows as it is on any terminal.
func CheckEmittedName(image, name string) error {
	suffix, ok := strings.CutPrefix(name, image)
	switch {
	case len(name) > maxEmittedName:
		return fmt.Errorf("%q is longer than %d bytes", name, maxEmittedName)
	case !ok || len(suffix) < 2 || (suffix[0] != '.' && suffix[0] != '-'):
		return fmt.Errorf("%q is not named %s.SUFFIX or %s-SUFFIX (IMAGE_NAME.*, IMAGE_NAME-*)", name, image, image)
	case strings.Contains(suffix, ".."):
		return fmt.Errorf("%q holds \"..\"", name)
	}
	for _, r := range suffix {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._+-~@=", r)) {
			return fmt.Errorf("%q has %q in its suffix: only letters, digits and . _ + - ~ @ = are taken", name, r)
		}
	}
	return nil
}
