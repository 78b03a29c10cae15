package chroot

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KillIn kills every process whose root or working directory is root
// or below it, waits a little for them to go, and returns each as
// "name(pid)". What a hook left running there (a gpg-agent gpg
// started, a daemon a package's script started) holds the tree busy;
// DIB kills such processes (kill_chroot_processes) before it unmounts
// the image.
func KillIn(root string) []string {
	var killed []string
	seen := map[int]bool{}
	for range 20 {
		left := false
		procs, _ := filepath.Glob("/proc/[0-9]*/root")
		for _, p := range procs {
			if !within(p, root) && !within(filepath.Join(filepath.Dir(p), "cwd"), root) {
				continue
			}
			pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			if err != nil || pid == os.Getpid() {
				continue
			}
			if !seen[pid] {
				seen[pid] = true
				comm, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "comm"))
				killed = append(killed, fmt.Sprintf("%s(%d)", strings.TrimSpace(string(comm)), pid))
			}
			syscall.Kill(pid, syscall.SIGKILL)
			left = true
		}
		if !left {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return killed
}

// within says whether the link at /proc/PID/{root,cwd} leads to root
// or below it.
func within(link, root string) bool {
	r, err := os.Readlink(link)
	return err == nil && (r == root || strings.HasPrefix(r, root+"/"))
}

// UnmountBelow unmounts every filesystem mounted below root (not root
// itself), the deepest first, detaching each from what still uses it,
// and returns their mount points. A hook outside the chroot may leave
// mounts in the target (DIB 3.13's yum-minimal mounts the kernel's
// filesystems in it itself); DIB's unmount_dir unmounts all of them
// before the image is unmounted.
func UnmountBelow(root string, unmount func(string, int) error) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var done []string
	for _, mp := range mountedBelow(data, root) {
		if unmount(mp, syscall.MNT_DETACH) == nil {
			done = append(done, mp)
		}
	}
	return done
}

// mountedBelow are the mount points in mountinfo below root, the
// deepest first; a path mounted twice is there twice.
func mountedBelow(mountinfo []byte, root string) []string {
	var below []string
	for _, line := range strings.Split(string(mountinfo), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if strings.HasPrefix(mp, root+"/") {
			below = append(below, mp)
		}
	}
	// Later mounts over earlier ones come first at one depth.
	slices.Reverse(below)
	sort.SliceStable(below, func(i, j int) bool { return strings.Count(below[i], "/") > strings.Count(below[j], "/") })
	return below
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a
// path in /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
