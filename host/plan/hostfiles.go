package plan

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/hostpath"
	"github.com/dibvm/dibvm/host/iso"
)

// Some of DIB's settings name a file or directory on the machine
// disk-image-create runs on: its hooks outside the chroot read them
// there. dibvm's hooks run in the VM, where the host's paths mean
// nothing, so the host lends each such path (see host/hostpath), and the
// variable points at the read-only copy. A setting that names nothing is
// an error before the VM boots: DIB would skip it or fail late.
// docs/dib-differences.md lists these settings, with DIB's others that
// name host paths and what dibvm does with each.
var hostPathVars = []hostPathVar{
	{"DIB_DEV_USER_AUTHORIZED_KEYS", hostpath.File, "devuser's authorized_keys"},
	{"DIB_APT_KEYRING", hostpath.File, "the keyring debootstrap and apt check the mirror with"},
	{"DIB_DEBIAN_KEYRING", hostpath.File, "the keyring debootstrap and apt check the mirror with"},
	{"DIB_UBUNTU_CLOUD_KEYRING", hostpath.File, "the keyring SHA256SUMS.gpg of the Ubuntu cloud images is checked with"},
	{"DIB_APT_CONF", hostpath.File, "the apt.conf apt-conf installs"},
	{"DIB_APT_SOURCES", hostpath.File, "the sources.list apt-sources installs"},
	{"DIB_DPKG_MANIFEST", hostpath.File, "the dpkg manifest apt-preferences pins packages to"},
	{"DIB_FAIL2BAN_CONF", hostpath.File, "the fail2ban.conf fail2ban installs"},
	{"DIB_DEB_UPDATES_CONF", hostpath.File, "the 50unattended-upgrades autoupdates installs"},
	{"DIB_YUM_UPDATES_CONF", hostpath.File, "the automatic.conf autoupdates installs"},
	{"DIB_ADD_APT_KEYS", hostpath.Dir, "the directory of keys dpkg adds to apt's trusted.gpg.d"},
	{"DIB_DEBIAN_DEBOOTSTRAP_SCRIPT", hostpath.File, "the script debootstrap runs instead of the suite's"},
	{"DIB_CONTAINERFILE_DOCKERFILE", hostpath.File, "the Containerfile containerfile builds"},
	{"DIB_CONTAINER_FILE", hostpath.File, "the Containerfile containerfile builds (DIB 3.13)"},
	{"DIB_CONTAINER_CONTEXT", hostpath.Dir, "the build context of containerfile"},
	// Not DIB's: podman's own, which DIB's containerfile honours through
	// the host's podman (mirrors, insecure registries).
	{"CONTAINERS_REGISTRIES_CONF", hostpath.File, "the registries.conf podman pulls the Containerfile's images by"},
	{"DIB_YUM_REPO_CONF", hostpath.File, "the repo files yum installs, space separated"},
	{"DIB_YUM_MINIMAL_BOOTSTRAP_REPOS", hostpath.Dir, "the directory of repo files yum-minimal bootstraps from"},
	{"DIB_YUM_MINIMAL_EXTRA_REPOS", hostpath.Dir, "the directory of repo files yum-minimal adds"},
	{"DIB_OS_CI_YUM_REPOS", hostpath.Dir, "the directory of repo files openstack-ci-mirrors uses"},
	{"DIB_ILO_FIRMWARE_PATH", hostpath.Dir, "the directory of firmware ilo unpacks"},
}

type hostPathVar struct {
	name string
	kind hostpath.Kind
	why  string
}

// paths are the host paths the setting's value names: a list for
// DIB_YUM_REPO_CONF, which yum reads as one; none for a debootstrap
// script given by name (no slash), which is debootstrap's own.
func (v hostPathVar) paths(value string) []string {
	switch {
	case v.name == "DIB_YUM_REPO_CONF":
		return strings.Fields(value)
	case v.name == "DIB_DEBIAN_DEBOOTSTRAP_SCRIPT" && !strings.Contains(value, "/"):
		return nil
	}
	return []string{value}
}

// maxHostFile bounds a keyring the host reads for itself.
const maxHostFile = 16 << 20

// lendHostPaths lends the build the paths the settings in the build's
// environment name, and those of the variables --host-path names.
// Nothing reaches the build before packLoans.
func (p *Plan) lendHostPaths() error {
	env := p.Spec.Env
	for _, v := range hostPathVars {
		if env[v.name] == "" {
			continue
		}
		if paths := v.paths(env[v.name]); len(paths) > 0 {
			if _, err := p.Lender.Lend(v.name, paths, v.kind, v.why); err != nil {
				return err
			}
		}
	}
	return p.lendNamed()
}

// packLoans points each variable that lends a host path at its copy:
// spec.Env holds the copy's path in the guest from then on, spec.HostPaths
// the tars, which it returns as input-disk files.
func (p *Plan) packLoans() []iso.File {
	var files []iso.File
	for _, loan := range p.Lender.Loans() {
		p.Spec.Env[loan.Var] = loan.Value
		p.Spec.HostPaths = append(p.Spec.HostPaths, loan.Input)
		files = append(files, iso.File{Name: loan.Input, Data: loan.Tar})
	}
	return files
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// lendNamed lends what each variable --host-path names holds: one path,
// a file or a directory, for the user's own elements.
func (p *Plan) lendNamed() error {
	for _, kv := range p.Options.HostPaths {
		name, value, set := strings.Cut(kv, "=")
		if !envName.MatchString(name) {
			return fmt.Errorf("--host-path %q (or DIBVM_HOST_PATH): give the name of a variable, such as MY_CONFIG_FILE", name)
		}
		if slices.ContainsFunc(p.Lender.Loans(), func(l *hostpath.Loan) bool { return l.Var == name }) {
			continue // a DIB setting, lent already
		}
		if !set || value == "" {
			return fmt.Errorf("--host-path %s (or DIBVM_HOST_PATH): %s is not set: set it to the file or directory on this machine to lend the build", name, name)
		}
		if _, err := p.Lender.Lend(name, []string{value}, hostpath.FileOrDir, "lent by --host-path"); err != nil {
			return err
		}
	}
	return nil
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

// readHostFile reads a file of the host that the host itself uses.
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
// the guest sets the variable to a link, named as the file, to the
// disk's device.
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
			spec.HostDisks, spec.HostDiskNames = map[string]string{}, map[string]string{}
		}
		spec.HostDisks[k] = serial
		spec.HostDiskNames[k] = filepath.Base(path)
	}
	return disks, nil
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
