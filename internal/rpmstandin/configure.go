package rpmstandin

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// configure does by hand the essential work of the packages' maintainer
// scripts, which never run: the links update-alternatives and the
// shells' postinst would make, the CA bundle, and rpm's database where
// an rpm distribution has it. Accounts are the setup package's (see
// Accounts).
func configure(s *stager) error {
	for _, a := range alternativeLinks {
		if s.exists(a.link) {
			continue
		}
		for _, c := range a.candidates {
			if s.exists(c) {
				if err := s.symlink("/"+c, a.link); err != nil {
					return err
				}
				break
			}
		}
	}
	if err := caBundle(s); err != nil {
		return err
	}
	if err := pamCommon(s); err != nil {
		return err
	}
	// Debian's sudo ships sudoers world-readable and its maintainer
	// script makes it 0440, as sudo and visudo insist.
	if s.exists("etc/sudoers") {
		s.attrs["/etc/sudoers"] = Attr{Mode: 0o440}
	}
	// Debian's dnf-plugins-core has every plugin in one package and
	// enables local (a repository of all dnf installs, which fails every
	// run without createrepo_c) and versionlock; a CentOS install has
	// neither.
	for _, p := range []string{"etc/dnf/plugins/local.conf", "etc/dnf/plugins/versionlock.conf"} {
		if err := s.writeFile(p, []byte("[main]\nenabled = 0\n"), 0o644); err != nil {
			return err
		}
	}
	// Debian's rpm keeps its database in ~/.rpmdb, as a tool beside
	// dpkg; in the image rpm is the system's package manager.
	return s.writeFile("etc/rpm/macros.dbpath", []byte("%_dbpath /var/lib/rpm\n"), 0o644)
}

// alternativeLinks are the generic names DIB's scripts and rpm
// distributions' users call, each to the first candidate there.
var alternativeLinks = []struct {
	link       string
	candidates []string
}{
	{"usr/bin/sh", []string{"usr/bin/dash", "usr/bin/bash"}},
	{"usr/bin/awk", []string{"usr/bin/gawk", "usr/bin/mawk"}},
	{"usr/bin/nawk", []string{"usr/bin/gawk", "usr/bin/mawk"}},
	{"usr/bin/which", []string{"usr/bin/which.debianutils"}},
	{"usr/bin/pager", []string{"usr/bin/less", "usr/bin/more"}},
	{"usr/bin/editor", []string{"usr/bin/vim.basic", "usr/bin/vim.tiny", "usr/bin/nano"}},
	// Fedora's dnf packages answer to yum; DIB's yum-minimal calls
	// yum in the chroot.
	{"usr/bin/yum", []string{"usr/bin/dnf"}},
}

// caBundle writes /etc/ssl/certs/ca-certificates.crt as
// update-ca-certificates would, and links the path rpm distributions
// use to it.
func caBundle(s *stager) error {
	var bundle bytes.Buffer
	dir := filepath.Join(s.root, "usr/share/ca-certificates")
	err := filepath.WalkDir(dir, func(file string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.HasSuffix(file, ".crt") {
			return err
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		bundle.Write(data)
		if !bytes.HasSuffix(data, []byte("\n")) {
			bundle.WriteByte('\n')
		}
		return nil
	})
	if os.IsNotExist(err) || bundle.Len() == 0 {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.writeFile("etc/ssl/certs/ca-certificates.crt", bundle.Bytes(), 0o644); err != nil {
		return err
	}
	return s.symlink("../../../ssl/certs/ca-certificates.crt", "etc/pki/tls/certs/ca-bundle.crt")
}

// Accounts are /etc/passwd, /etc/group, /etc/shadow and /etc/gshadow
// from base-passwd's masters in the userland, as base-passwd's and
// passwd's postinst make them: on an rpm distribution the setup
// package's files. Every password is locked.
func (u *Userland) Accounts() ([]File, error) {
	s := &stager{root: u.Tree}
	passwd, err := s.read("usr/share/base-passwd/passwd.master")
	if err != nil {
		return nil, fmt.Errorf("the userland has no base-passwd: %w", err)
	}
	group, err := s.read("usr/share/base-passwd/group.master")
	if err != nil {
		return nil, fmt.Errorf("the userland has no base-passwd: %w", err)
	}
	var shadow, gshadow strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(string(passwd)), "\n") {
		name, _, _ := strings.Cut(line, ":")
		fmt.Fprintf(&shadow, "%s:*:20000:0:99999:7:::\n", name)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(group)), "\n") {
		name, _, _ := strings.Cut(line, ":")
		fmt.Fprintf(&gshadow, "%s:*::\n", name)
	}
	// Fedora's setup gives the shadow files no permissions at all: only
	// root, which ignores them, reads them.
	return []File{
		{Path: "/etc/passwd", Mode: 0o644, Data: passwd, Config: true},
		{Path: "/etc/group", Mode: 0o644, Data: group, Config: true},
		{Path: "/etc/shadow", Mode: 0, Data: []byte(shadow.String()), Config: true},
		{Path: "/etc/gshadow", Mode: 0, Data: []byte(gshadow.String()), Config: true},
	}, nil
}

// pamCommonFiles are what Debian's pam-auth-update writes from
// libpam-runtime's pam_unix profile alone: sudo, su and login include
// them, and without them PAM refuses every session.
var pamCommonFiles = map[string]string{
	"common-auth": "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n" +
		"auth\trequisite\t\t\tpam_deny.so\nauth\trequired\t\t\tpam_permit.so\n",
	"common-account": "account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so\n" +
		"account\trequisite\t\t\tpam_deny.so\naccount\trequired\t\t\tpam_permit.so\n",
	"common-password": "password\t[success=1 default=ignore]\tpam_unix.so obscure yescrypt\n" +
		"password\trequisite\t\t\tpam_deny.so\npassword\trequired\t\t\tpam_permit.so\n",
	"common-session": "session\t[default=1]\t\t\tpam_permit.so\nsession\trequisite\t\t\tpam_deny.so\n" +
		"session\trequired\t\t\tpam_permit.so\nsession\trequired\tpam_unix.so\n",
	"common-session-noninteractive": "session\t[default=1]\t\t\tpam_permit.so\nsession\trequisite\t\t\tpam_deny.so\n" +
		"session\trequired\t\t\tpam_permit.so\nsession\trequired\tpam_unix.so\n",
}

// pamCommon writes the common PAM files where the userland has PAM's
// profiles (libpam-runtime), whose maintainer script would make them.
func pamCommon(s *stager) error {
	if !s.exists("usr/share/pam-configs/unix") {
		return nil
	}
	for name, data := range pamCommonFiles {
		if err := s.writeFile("etc/pam.d/"+name, []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}
