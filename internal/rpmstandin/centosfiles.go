package rpmstandin

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// filesystemEntries are the filesystem package's: the directory tree
// with CentOS's modes and the merged-/usr links.
func filesystemEntries() []File {
	dirs := map[string]fs.FileMode{
		"/boot": 0o555, "/proc": 0o555, "/sys": 0o555, "/root": 0o550,
		"/tmp": fs.ModeSticky | 0o777, "/var/tmp": fs.ModeSticky | 0o777,
		"/usr/lib": 0o555, "/usr/lib64": 0o555,
	}
	for _, d := range []string{
		"/dev", "/etc", "/etc/pki", "/etc/yum.repos.d", "/etc/sysconfig", "/etc/default",
		"/etc/skel", "/etc/opt", "/etc/xdg", "/etc/bash_completion.d", "/home", "/media", "/mnt", "/opt",
		"/run", "/srv", "/usr", "/usr/bin", "/usr/include", "/usr/libexec", "/usr/sbin",
		"/usr/share", "/usr/src", "/usr/local", "/usr/local/bin", "/usr/local/etc",
		"/usr/local/include", "/usr/local/lib", "/usr/local/lib64", "/usr/local/libexec",
		"/usr/local/sbin", "/usr/local/share", "/usr/local/src", "/var", "/var/cache",
		"/var/lib", "/var/log", "/var/opt", "/var/spool", "/var/spool/mail",
	} {
		dirs[d] = 0o755
	}
	var out []File
	for d, mode := range dirs {
		out = append(out, File{Path: d, Mode: fs.ModeDir | mode})
	}
	for link, target := range map[string]string{
		"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib", "/lib64": "usr/lib64",
		"/var/run": "../run", "/var/lock": "../run/lock", "/var/mail": "spool/mail",
	} {
		out = append(out, File{Path: link, Mode: fs.ModeSymlink | 0o777, Target: target})
	}
	return out
}

// centosRepoFiles are centos-stream-repos' files: CentOS's own mirrors,
// packages checked against the key centos-gpg-keys installs. A build
// against the stand-in sets DIB_YUM_MINIMAL_BOOTSTRAP_REPOS, which
// yum-minimal puts over these and takes away at the end.
func centosRepoFiles(rel string) []File {
	var repo strings.Builder
	for _, r := range []struct{ id, name string }{
		{"baseos", "BaseOS"}, {"appstream", "AppStream"}, {"crb", "CRB"},
	} {
		enabled := 1
		if r.id == "crb" {
			enabled = 0
		}
		fmt.Fprintf(&repo, `[%s]
name=CentOS Stream $releasever - %s
metalink=https://mirrors.centos.org/metalink?repo=centos-%s-$stream&arch=$basearch&protocol=https,http
gpgkey=file://%s
gpgcheck=1
repo_gpgcheck=0
metadata_expire=6h
countme=1
enabled=%d

`, r.id, r.name, r.id, CentOSKeyPath, enabled)
	}
	return []File{
		{Path: "/etc/yum.repos.d/centos.repo", Mode: 0o644, Config: true, Data: []byte(repo.String())},
		{Path: "/etc/dnf/vars/stream", Mode: 0o644, Config: true, Data: []byte(rel + "-stream\n")},
	}
}

// drop removes from the userland the files and links at files' paths
// (directories stay): another package ships them.
func (u *Userland) drop(files []File) error {
	for _, f := range files {
		if f.Mode.IsDir() {
			continue
		}
		dst := filepath.Join(u.Tree, filepath.FromSlash(f.Path))
		fi, err := os.Lstat(dst)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return fmt.Errorf("the userland has a directory %s where a stand-in package ships a file", f.Path)
		}
		if err := os.Remove(dst); err != nil {
			return err
		}
		delete(u.Attrs, f.Path)
	}
	return nil
}
