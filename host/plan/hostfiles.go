package plan

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/iso"
)

// Some of DIB's settings name a file on the machine disk-image-create
// runs on: DIB reads them there, outside the chroot. dibvm's hooks run in
// the VM, where the host's paths mean nothing, so the host reads each
// such file and carries it on the input disk, and the guest sets the
// variable to the copy. A named file that is not there is an error before
// the VM boots: DIB would skip it or fail late.
var hostFileVars = map[string]string{
	"DIB_DEV_USER_AUTHORIZED_KEYS": "devuser's authorized_keys",
	"DIB_APT_KEYRING":              "the keyring debootstrap and apt check the mirror with",
	"DIB_DEBIAN_KEYRING":           "the keyring debootstrap and apt check the mirror with",
	"DIB_UBUNTU_CLOUD_KEYRING":     "the keyring SHA256SUMS.gpg of the Ubuntu cloud images is checked with",
}

// maxHostFile bounds each carried file: keys and keyrings are small, and
// the input disk is made in memory.
const maxHostFile = 16 << 20

// hostFiles reads the files env's host-file variables name and returns
// them as input-disk files, with spec.HostFiles saying which variable
// each is for.
func hostFiles(env map[string]string, spec *api.Spec) ([]iso.File, error) {
	var files []iso.File
	for i, k := range setVars(env, hostFileVars) {
		data, err := readHostFile(env[k])
		if err != nil {
			return nil, fmt.Errorf("%s=%s (%s): %w", k, env[k], hostFileVars[k], err)
		}
		name := fmt.Sprintf("hostf%d", i)
		files = append(files, iso.File{Name: name, Data: data})
		if spec.HostFiles == nil {
			spec.HostFiles = map[string]string{}
		}
		spec.HostFiles[k] = name
	}
	return files, nil
}

// setVars are the names of vars that env sets, sorted.
func setVars(env map[string]string, vars map[string]string) []string {
	var names []string
	for k := range vars {
		if env[k] != "" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// openRegular opens the host's file at path, which must be a regular
// file; lends says what dibvm does with it, for the error when it is
// missing.
func openRegular(path, lends string) (*os.File, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("no such file here: it names a file on this machine, which dibvm " + lends)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func readHostFile(path string) ([]byte, error) {
	f, err := openRegular(path, "carries into the build")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxHostFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxHostFile {
		return nil, fmt.Errorf("larger than %d MiB", maxHostFile>>20)
	}
	return data, nil
}

// hostDiskVars name files on the host too large to carry on the input
// disk: each is attached to the VM as it is, as a read-only disk, and
// the guest sets the variable to the disk's device.
var hostDiskVars = map[string]string{
	"DIB_LOCAL_IMAGE": "the image the ubuntu element builds from instead of downloading one",
}

// HostDisk is a file of the host lent to the build as a read-only disk,
// which the guest finds by its serial.
type HostDisk struct {
	Serial string
	Source string // an absolute path
}

// hostDisks checks the files env's host-disk variables name and returns
// them as read-only disks, with spec.HostDisks saying which variable
// each is for.
func hostDisks(env map[string]string, spec *api.Spec) ([]HostDisk, error) {
	var disks []HostDisk
	for i, k := range setVars(env, hostDiskVars) {
		path, err := filepath.Abs(env[k])
		var f *os.File
		if err == nil {
			f, err = openRegular(path, "lends the build read-only")
		}
		if err == nil {
			f.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("%s=%s (%s): %w", k, env[k], hostDiskVars[k], err)
		}
		serial := fmt.Sprintf("dibvm-host%d", i)
		disks = append(disks, HostDisk{Serial: serial, Source: path})
		if spec.HostDisks == nil {
			spec.HostDisks = map[string]string{}
		}
		spec.HostDisks[k] = serial
	}
	return disks, nil
}
