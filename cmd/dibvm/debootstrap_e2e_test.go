//go:build e2e

package main_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// debootstrapCompare runs the debootstrap element's root.d hook twice in
// one helper VM, as a build runs it: once as it is, which gets its
// packages from the host, and once with an extra debootstrap argument
// that changes nothing in the tree (--verbose) but sends the hook down
// its old path, debootstrap fetching in the guest. Then it lists both
// trees: every file's type, owner, group, mode, size and link target,
// every regular file's SHA256, and the packages dpkg has installed.
const debootstrapCompare = `
set -eu
hook=$1
run() {
	t=$1; shift
	mkdir -p "$t"
	s=$(cut -d' ' -f1 /proc/uptime)
	if ! env "$@" TARGET_ROOT="$t" bash -c "$hook" >"$t.log" 2>&1; then
		echo "=== failed $t"; tail -50 "$t.log"; exit 1
	fi
	echo "=== took $t $s $(cut -d' ' -f1 /proc/uptime)"
	echo "=== on-host $t $(grep -c 'downloaded and checked on the host' "$t.log" || true)"
}
run /tmp/host
run /tmp/guest DIB_DEBOOTSTRAP_EXTRA_ARGS=--verbose
for t in /tmp/host /tmp/guest; do
	echo "=== files $t"
	(cd "$t" && find . -printf '%p\t%y\t%U\t%G\t%m\t%s\t%l\n' | LC_ALL=C sort)
	echo "=== sums $t"
	(cd "$t" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
	echo "=== packages $t"
	chroot "$t" dpkg-query -W -f '${Package} ${Version} ${Architecture} ${Status}\n' | LC_ALL=C sort
done
echo "=== end"
`

// What two debootstraps of the same packages differ in by nature: logs
// with times in them, ldconfig's cache of file times, and the day of the
// last password change, which shadow files count from 1970.
var debootstrapVaries = regexp.MustCompile(`^\./(var/log/.*|var/cache/ldconfig/aux-cache|etc/shadow-?)$`)

// TestE2EDebootstrapOnHostMatchesGuest checks that the tree debootstrap
// makes from the packages the host chose and fetched is the tree it
// makes fetching them itself, with the same packages, files, owners,
// modes and contents.
func TestE2EDebootstrapOnHostMatchesGuest(t *testing.T) {
	needVM(t)
	hook, err := os.ReadFile(filepath.Join("..", "..", "elements", "library", "debootstrap", "root.d", "08-debootstrap"))
	if err != nil {
		t.Fatal(err)
	}
	r := dibvm(t, nil, 60*time.Minute, "run", "--memory", "4096",
		"-e", "DISTRO_NAME=debian", "-e", "DIB_RELEASE=stable", "-e", "DIB_DISTRIBUTION_MIRROR=http://deb.debian.org/debian",
		"-e", "ARCH=amd64", "-e", "TMP_BUILD_DIR=/tmp",
		"--", "bash", "-c", debootstrapCompare, "compare", string(hook))
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout (tail):\n%s\nstderr:\n%s", r.code, tail(r.stdout, 60), r.stderr)
	}
	sec := sections(unstamp(r.stdout))
	if sec["on-host /tmp/host"] != "1" {
		t.Errorf("the hook did not take its packages from the host:\n%s", r.stdout[:min(len(r.stdout), 4000)])
	}
	if sec["on-host /tmp/guest"] != "0" {
		t.Errorf("with DIB_DEBOOTSTRAP_EXTRA_ARGS the hook still asked the host")
	}
	for _, part := range []string{"files", "sums", "packages"} {
		host, guest := treeLines(sec[part+" /tmp/host"]), treeLines(sec[part+" /tmp/guest"])
		if len(host) == 0 {
			t.Fatalf("no %s listed", part)
		}
		for _, d := range diffLines(host, guest) {
			t.Errorf("%s differ: %s", part, d)
		}
	}
	t.Logf("debootstrap in the guest: with the host fetching %s, fetching itself %s; %d packages",
		took(sec["took /tmp/host"]), took(sec["took /tmp/guest"]), len(treeLines(sec["packages /tmp/host"])))
}

// sections splits the script's output at its "=== name" lines; a
// section's name is the rest of its line when that has no more than two
// words, and its first word otherwise, with the rest as its text.
func sections(out string) map[string]string {
	m := map[string]string{}
	var name string
	var b strings.Builder
	flush := func() {
		if name != "" {
			m[name] = strings.TrimSuffix(b.String(), "\n")
		}
		b.Reset()
	}
	for _, l := range strings.Split(out, "\n") {
		if h, ok := strings.CutPrefix(l, "=== "); ok {
			flush()
			f := strings.Fields(h)
			switch {
			case len(f) == 2:
				name = h
			case len(f) > 2:
				name = f[0] + " " + f[1]
				b.WriteString(strings.Join(f[2:], " "))
			default:
				name = h
			}
			continue
		}
		b.WriteString(l + "\n")
	}
	flush()
	return m
}

// lines are a section's lines, less those of the files that vary.
func treeLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l == "" {
			continue
		}
		path := l
		if i := strings.IndexByte(l, '\t'); i >= 0 {
			path = l[:i]
		} else if f := strings.Fields(l); len(f) == 2 && len(f[0]) == 64 {
			path = f[1] // sha256sum's "SUM  PATH"
		}
		if debootstrapVaries.MatchString(path) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// diffLines names the lines only one side has, at most 40 of them.
func diffLines(a, b []string) []string {
	in := func(s []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range s {
			m[x] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for _, x := range a {
		if !mb[x] && len(out) < 40 {
			out = append(out, "only from the host: "+x)
		}
	}
	for _, x := range b {
		if !ma[x] && len(out) < 40 {
			out = append(out, "only from the guest: "+x)
		}
	}
	return out
}

// took is a "start end" pair of uptimes as a duration.
func took(s string) string {
	f := strings.Fields(s)
	if len(f) != 2 {
		return "?"
	}
	a, err1 := strconv.ParseFloat(f[0], 64)
	b, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil {
		return "?"
	}
	return time.Duration((b - a) * float64(time.Second)).Round(time.Second).String()
}
