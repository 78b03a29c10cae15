package dibbuild

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/chroot"
)

// searchPath is PATH for every hook. The tools come last, so that an
// element's own bin/ (installed by install-bin) wins, and both of their
// places are listed: outside the chroot and inside it.
func (b *build) searchPath() string {
	return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" +
		filepath.Join(b.hooks, toolsDir) + ":" + filepath.Join(chroot.InTarget, toolsDir)
}

// environment is what every hook gets, as DIB sets it.
func (b *build) environment() []string {
	s := b.spec
	yaml, array := elements.ImageElementVars(s.Elements, func(n string) string { return filepath.Join(b.elements, n) })
	env := b.ownEnvironment(yaml)
	// The caller's DIB_* settings replace the build's defaults, as in
	// DIB; the caller's other variables fill in only what the build does
	// not set itself (PATH, HOME, TARGET_ROOT and the like stay its own).
	for k, v := range s.Env {
		if _, own := env[k]; !own || strings.HasPrefix(k, "DIB_") {
			env[k] = v
		}
	}
	// The host already set the variables that lend its paths to the
	// copies, which prepare unpacked (see lendPaths).
	for k, dev := range b.lent {
		env[k] = dev
	}
	// Hooks may keep files in DIB_IMAGE_CACHE; the host's directory of
	// that name is not theirs to write, so they get one on the scratch
	// disk. Downloads persist on the host through the egress proxy.
	env["DIB_IMAGE_CACHE"] = filepath.Join(root, "cache")
	env[api.ManifestsEnv] = b.manifests()
	// The helper's way out (see host/egress) applies to hooks too.
	for _, k := range []string{"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY", api.DebootstrapEnv, api.SourceCacheEnv} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	out := make([]string, 0, len(env)+1)
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	// disk-image-create exports these functions; hooks call them.
	out = append(out, "BASH_FUNC_get_image_element_array%%=() {  echo \""+array+"\"\n}", exportedDie)
	return out
}

// exportedDie is common-functions' die as bash exports a function, for
// the hooks that call die without sourcing anything, as DIB's exported
// die lets them (local-config, yum-minimal, pip-and-virtualenv).
const exportedDie = "BASH_FUNC_die%%=() {  local status=$?;\n echo \"$*\" 1>&2;\n exit $((status ? status : 1))\n}"

// ownEnvironment is what the build sets itself, before the caller's
// settings: DIB's variables for this build.
func (b *build) ownEnvironment(elementYAML string) map[string]string {
	s := b.spec
	env := map[string]string{
		"PATH":               b.searchPath(),
		"HOME":               "/root",
		"LANG":               "C.UTF-8",
		"LC_ALL":             "C",
		"TMPDIR":             "/tmp",
		"TARGET_ROOT":        b.target,
		"TMP_MOUNT_PATH":     b.target,
		"TMP_HOOKS_PATH":     b.hooks,
		"TMP_BUILD_DIR":      b.work,
		"TMP_IMAGE_DIR":      b.work,
		"ARCH":               s.Arch,
		"IMAGE_NAME":         filepath.Join(emittedDir, s.ImageName),
		"IMAGE_ELEMENT":      strings.Join(s.Elements, " "),
		"IMAGE_ELEMENT_YAML": elementYAML,
		"ELEMENTS_PATH":      b.elements,
		"_LIB":               libDir,
		"DIB_ARGS":           strings.Join(s.Elements, " "),
		"DIB_DEBUG_TRACE":    "0",
		"DIB_ROOT_LABEL":     s.RootLabel,
		"DIB_ROOT_FSTYPE":    s.RootFSType,
		"DIB_BOOT_LABEL":     "",
		// disk-image-create always sets these, so DIB's hooks use them
		// bare under set -u: DIB_OFFLINE empty unless --offline (the
		// caller's setting replaces it), a directory for the hooks'
		// lock files, and the layout's mount points joined by "|".
		"DIB_OFFLINE":     "",
		"DIB_LOCKFILES":   lockDir,
		"DIB_MOUNTPOINTS": mountPoints(s.Layout),
	}
	if s.Trace {
		env["DIB_DEBUG_TRACE"] = "1"
	}
	if s.SourceDateEpoch != nil {
		// The variable reproducible-builds.org has every tool read
		// (shadow's password dates, byte-compiled Python, the initramfs
		// tools, mksquashfs); a fixed hash seed orders what Python
		// writes from sets the same each run.
		env["SOURCE_DATE_EPOCH"] = strconv.FormatInt(*s.SourceDateEpoch, 10)
		env["PYTHONHASHSEED"] = "0"
	}
	return env
}

// lockDir is DIB_LOCKFILES: the build is alone in its VM, so the locks
// DIB's hooks take there guard nothing but themselves, as DIB's do for
// a single build.
var lockDir = filepath.Join(root, "lockfiles")

// mountPoints is DIB_MOUNTPOINTS: the mount points of layout's
// filesystems in its order, joined by "|" (which no path DIB takes
// holds), as DIB's block-device getval mount-points prints them; "/"
// for a build with no disk layout, as DIB's default layout has.
func mountPoints(layout *api.Layout) string {
	if layout == nil {
		return "/"
	}
	var mps []string
	for _, d := range layout.Devices() {
		if d.FS != nil && d.FS.MountPoint != "" {
			mps = append(mps, d.FS.MountPoint)
		}
	}
	return strings.Join(mps, "|")
}

// setEnv sets a variable for the hooks still to run.
func (b *build) setEnv(k, v string) {
	b.env = slices.DeleteFunc(b.env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
	b.env = append(b.env, k+"="+v)
}
