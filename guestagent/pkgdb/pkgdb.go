// Package pkgdb reads which packages a tree has installed from its own
// package database: dpkg's status file, or rpm's database through the
// tree's own rpm. The host records them in the build's lock file.
package pkgdb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

// dpkgStatus is dpkg's database of what is installed.
const dpkgStatus = "var/lib/dpkg/status"

// rpmDatabases are where rpm keeps its database: /usr/lib/sysimage/rpm
// from rpm 4.16's distributions on, /var/lib/rpm before.
var rpmDatabases = []string{"usr/lib/sysimage/rpm", "var/lib/rpm"}

// rpmQuery is what rpm prints of each package: the epoch only where
// there is one, as rpm -q names packages (EVR).
const rpmQuery = `%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n`

// ErrNone says the tree has no package database.
var ErrNone = errors.New("no package database")

// Installed lists the packages tree has installed. The tree is the
// build's, which hooks wrote: dpkg's status is read inside it (a link
// leads nowhere outside), and rpm runs chrooted in it.
func Installed(run toolrun.Runner, tree string) ([]api.Package, error) {
	root, err := os.OpenRoot(tree)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	if b, err := root.ReadFile(dpkgStatus); err == nil {
		return parseDpkgStatus(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read /%s: %w", dpkgStatus, err)
	}
	for _, db := range rpmDatabases {
		if info, err := root.Stat(db); err != nil || !info.IsDir() {
			continue
		}
		out, err := run.Output("chroot", tree, "rpm", "-qa", "--qf", rpmQuery)
		if err != nil {
			return nil, fmt.Errorf("list the image's rpm packages: %w", err)
		}
		return parseLines(out)
	}
	return nil, ErrNone
}

// parseDpkgStatus reads the packages dpkg says are installed: those
// whose Status ends "installed" (not "config-files", "half-installed"
// and the like).
func parseDpkgStatus(status []byte) ([]api.Package, error) {
	var pkgs []api.Package
	for _, para := range bytes.Split(status, []byte("\n\n")) {
		var p api.Package
		installed := false
		sc := bufio.NewScanner(bytes.NewReader(para))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			key, value, ok := strings.Cut(sc.Text(), ":")
			if !ok || strings.HasPrefix(key, " ") {
				continue // a continuation line
			}
			value = strings.TrimSpace(value)
			switch key {
			case "Package":
				p.Name = value
			case "Version":
				p.Version = value
			case "Architecture":
				p.Arch = value
			case "Status":
				installed = strings.HasSuffix(value, " installed")
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read /%s: %w", dpkgStatus, err)
		}
		if installed && p.Name != "" {
			pkgs = append(pkgs, p)
		}
	}
	return pkgs, nil
}

// parseLines reads rpm's lines of rpmQuery.
func parseLines(out []byte) ([]api.Package, error) {
	var pkgs []api.Package
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("rpm -qa printed %q", line)
		}
		if f[0] == "gpg-pubkey" {
			continue // a key rpm imported, not a package
		}
		pkgs = append(pkgs, api.Package{Name: f[0], Version: f[1], Arch: f[2]})
	}
	return pkgs, nil
}
