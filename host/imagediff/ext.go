package imagediff

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// extEntries are the files of the ext filesystem on p, read with
// debugfs: each directory listed by inode number (ls -p), level by
// level, and each file's content dumped to a file named for its inode
// number. No host path is made of a name in the image, which may be
// anyone's: debugfs's rdump would follow a link the image holds.
func extEntries(ctx context.Context, disk string, p partition, dst string) (map[string]entry, error) {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return nil, err
	}
	dev := fmt.Sprintf("%s?offset=%d", disk, p.Start)
	out := map[string]entry{}
	type dirent struct {
		ino  uint64
		path string
	}
	level := []dirent{{2, ""}} // ext's root directory is inode 2
	var files, links []dirent
	for depth := 0; len(level) > 0; depth++ {
		if depth > maxDepth || len(out) > maxEntries {
			return nil, fmt.Errorf("%s: more than %d levels or %d files", dev, maxDepth, maxEntries)
		}
		var cmds []string
		for _, d := range level {
			cmds = append(cmds, fmt.Sprintf("ls -p <%d>", d.ino))
		}
		listings, err := debugfs(ctx, dev, dst, cmds)
		if err != nil {
			return nil, err
		}
		var next []dirent
		for i, d := range level {
			for _, line := range strings.Split(listings[i], "\n") {
				f, ok := parseLsLine(line)
				if !ok || f.name == "." || f.name == ".." || (d.path == "" && f.name == "lost+found") {
					continue
				}
				e := dirent{f.ino, d.path + "/" + f.name}
				out[e.path] = entry{kind: kind(f.mode), mode: f.mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), owner: f.owner}
				switch {
				case f.mode.IsDir():
					next = append(next, e)
				case f.mode.IsRegular():
					files = append(files, e)
				case f.mode&fs.ModeSymlink != 0:
					links = append(links, e)
				}
			}
		}
		level = next
	}
	var cmds []string
	for _, f := range files {
		cmds = append(cmds, fmt.Sprintf("dump_inode <%d> %s", f.ino, filepath.Join(dst, strconv.FormatUint(f.ino, 10))))
	}
	for _, l := range links {
		cmds = append(cmds, fmt.Sprintf("stat <%d>", l.ino))
	}
	results, err := debugfs(ctx, dev, dst, cmds)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		e := out[f.path]
		if e.content, err = fileSum(filepath.Join(dst, strconv.FormatUint(f.ino, 10))); err != nil {
			return nil, err
		}
		out[f.path] = e
	}
	for i, l := range links {
		e := out[l.path]
		if m := fastLink.FindStringSubmatch(results[len(files)+i]); m != nil {
			e.link = m[1]
		} else {
			e.link = "(a long link: not read)"
		}
		out[l.path] = e
	}
	return out, nil
}

// Bounds on a filesystem listed: an image's may be anyone's.
const (
	maxDepth   = 256
	maxEntries = 2_000_000
)

var fastLink = regexp.MustCompile(`Fast link dest: "(.*)"`)

// lsEntry is one line of debugfs's ls -p: /INODE/MODE/UID/GID/NAME/SIZE/.
type lsEntry struct {
	ino   uint64
	mode  fs.FileMode
	owner string
	name  string
}

func parseLsLine(line string) (lsEntry, bool) {
	if !strings.HasPrefix(line, "/") || !strings.HasSuffix(line, "/") {
		return lsEntry{}, false
	}
	f := strings.Split(line[1:len(line)-1], "/")
	if len(f) < 6 {
		return lsEntry{}, false
	}
	ino, err1 := strconv.ParseUint(f[0], 10, 64)
	mode, err2 := strconv.ParseUint(f[1], 8, 32)
	if err1 != nil || err2 != nil {
		return lsEntry{}, false
	}
	return lsEntry{ino: ino, mode: unixMode(uint32(mode)), owner: f[2] + ":" + f[3], name: strings.Join(f[4:len(f)-1], "/")}, true
}

// unixMode is a Unix st_mode as an fs.FileMode.
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o100000:
	case 0o020000:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		mode |= fs.ModeDevice
	case 0o010000:
		mode |= fs.ModeNamedPipe
	case 0o140000:
		mode |= fs.ModeSocket
	}
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// debugfs runs cmds, one a line, on dev, and returns each one's output:
// debugfs echoes each command it reads from a file before its output.
func debugfs(ctx context.Context, dev, dir string, cmds []string) ([]string, error) {
	out := make([]string, len(cmds))
	if len(cmds) == 0 {
		return out, nil
	}
	script := filepath.Join(dir, "debugfs.cmds")
	if err := os.WriteFile(script, []byte(strings.Join(cmds, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(script)
	cmd := exec.CommandContext(ctx, "debugfs", "-f", script, dev)
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("debugfs on %s: %v", dev, err)
	}
	i := -1
	for _, line := range strings.Split(string(b), "\n") {
		if i+1 < len(cmds) && line == "debugfs: "+cmds[i+1] {
			i++
			continue
		}
		if i >= 0 {
			out[i] += line + "\n"
		}
	}
	if i != len(cmds)-1 {
		return nil, fmt.Errorf("debugfs on %s answered %d of %d commands", dev, i+1, len(cmds))
	}
	return out, nil
}

func kind(m fs.FileMode) byte {
	switch {
	case m.IsDir():
		return 'd'
	case m&fs.ModeSymlink != 0:
		return 'l'
	case m.IsRegular():
		return 'f'
	}
	return 'o'
}

func fileSum(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// removeAll removes dir, whose copied-out directories may have no write
// permission for their owner.
func removeAll(dir string) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(path, 0o700)
		}
		return nil
	})
	os.RemoveAll(dir)
}
