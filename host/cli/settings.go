package cli

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/dibvm/dibvm/host/envvar"
	"github.com/dibvm/dibvm/host/hookenv"
	"github.com/dibvm/dibvm/host/plan"
	"github.com/spf13/pflag"
)

// environ is the caller's environment, or none for -c: DIB's -c
// re-executes itself with an empty environment, so nothing of the
// caller's reaches the build; flags still do.
func environ(clear bool) []string {
	if clear {
		return nil
	}
	return os.Environ()
}

// fromEnviron sets each flag of environFlags that was not given from its
// variable, if set.
func (c *createFlags) fromEnviron(f *pflag.FlagSet, env []string, p *problems) {
	for _, ef := range environFlags {
		v := envvar.Get(env, ef.variable)
		if v == "" || f.Changed(ef.flag) {
			continue
		}
		if err := f.Set(ef.flag, v); err != nil {
			p.add("%s=%s (for --%s): %v", ef.variable, v, ef.flag, err)
		}
	}
}

// maxImageGB bounds --image-size: the scratch disk is twice the image,
// and ext4, the usual home of the sparse files, takes files of 16 TiB.
const maxImageGB = 4000

func (c *createFlags) checkNumbers(f *pflag.FlagSet, p *problems) {
	for _, s := range []struct {
		flag, env string
		gb        float64
	}{{"image-size", "DIB_IMAGE_SIZE", c.o.ImageSizeGB}, {"image-extra-size", "DIB_IMAGE_EXTRA_SIZE", c.o.ExtraSizeGB}} {
		switch {
		case math.IsNaN(s.gb) || math.IsInf(s.gb, 0):
			p.add("--%s %g (or %s): give a number of GB, such as 4 or 2.5", s.flag, s.gb, s.env)
		case s.gb < 0:
			p.add("--%s %g (or %s): cannot be negative", s.flag, s.gb, s.env)
		case s.gb > maxImageGB:
			p.add("--%s %g (or %s): more than the %d GB dibvm makes an image of", s.flag, s.gb, s.env, maxImageGB)
		case s.flag == "image-size" && f.Changed(s.flag) && s.gb < 0.1:
			p.add("--image-size %g (or DIB_IMAGE_SIZE): is in GB, and an image needs at least 0.1 (leave it out to size the image from its tree)", s.gb)
		}
	}
	if c.o.MaxOnlineResize < 0 {
		p.add("--max-online-resize %d (or MAX_ONLINE_RESIZE): cannot be negative", c.o.MaxOnlineResize)
	}
	if c.o.JournalMiB < 0 {
		p.add("--mkfs-journal-size %d (or DIB_JOURNAL_SIZE): cannot be negative", c.o.JournalMiB)
	}
	if c.minTmpfs < 0 {
		p.add("--min-tmpfs %d: cannot be negative", c.minTmpfs)
	}
	if c.scratch > 0 && c.o.ImageSizeGB*1e9 >= float64(c.scratch) {
		p.add("--scratch-size %s cannot hold a %g GB image (--image-size): give at least twice that", c.scratch.String(), c.o.ImageSizeGB)
	}
	if c.timeout < 0 {
		p.add("--timeout %s: give a duration such as 4h, or 0 for no limit", c.timeout)
	}
}

// settings resolves, once, the settings the build reads that DIB takes
// from a flag or from its environment: a flag given wins, then the
// variable (fromEnviron has already put ROOT_LABEL into --root-label).
// With -c, env is empty, and only the flags count.
func (c *createFlags) settings(o *plan.Options, env []string) {
	o.RootLabel = cmp.Or(c.rootLabel, envvar.Get(env, "DIB_ROOT_LABEL"))
	o.InstallType = cmp.Or(c.installType, envvar.Get(env, "DIB_DEFAULT_INSTALLTYPE"))
	o.Offline = c.offline || envvar.Get(env, "DIB_OFFLINE") != ""
	o.FSType = envvar.Get(env, "FS_TYPE")
	o.Break = envvar.Get(env, "break")
	o.BlockDeviceConfig = envvar.Get(env, "DIB_BLOCK_DEVICE_CONFIG")
	o.ElementsPath = envvar.Get(env, "ELEMENTS_PATH")
	o.ManifestSaveDir = envvar.Get(env, "DIB_MANIFEST_SAVE_DIR")
}

// resolveEnv gives each --env NAME, and each variable --host-path names,
// its value, as NAME=VALUE: the build's environment's, else that of the
// environment dibvm was started with (with -c the build's is empty, and
// the user still named the variable). A NAME set nowhere stays as it
// is, and the build refuses it.
func resolveEnv(o *plan.Options, hostPaths []string) {
	lookup := func(name string) (string, bool) {
		if v, ok := envvar.Lookup(o.Environ, name); ok {
			return v, true
		}
		return os.LookupEnv(name)
	}
	o.ExplicitEnv = hookenv.Resolve(o.ExplicitEnv, lookup)
	o.HostPaths = hookenv.Resolve(hostPaths, lookup)
}

// hostPathVars are the variables --host-path names, or where it is not
// given, DIBVM_HOST_PATH.
func (c *createFlags) hostPathVars() []string {
	lists := c.hostPaths
	if lists == nil {
		lists = []string{os.Getenv("DIBVM_HOST_PATH")}
	}
	var names []string
	for _, l := range lists {
		names = append(names, splitList(l)...)
	}
	return names
}

// exported are the variables disk-image-create exports for its flags,
// which hooks read, each with the value settings resolved.
func (c *createFlags) exported(o *plan.Options) []string {
	var env []string
	if c.rootLabel != "" {
		env = append(env, "DIB_ROOT_LABEL="+o.RootLabel)
	}
	if c.installType != "" {
		env = append(env, "DIB_DEFAULT_INSTALLTYPE="+o.InstallType)
	}
	// As DIB's --offline, which exports 1; without the flag, the
	// caller's DIB_OFFLINE stays as it was set.
	if c.offline {
		env = append(env, "DIB_OFFLINE=1")
	}
	// The build is always on a scratch disk; hooks still see the
	// settings as disk-image-create exports them.
	if c.noTmpfs {
		env = append(env, "DIB_NO_TMPFS=1")
	}
	if c.minTmpfs > 0 {
		env = append(env, fmt.Sprintf("DIB_MIN_TMPFS=%d", c.minTmpfs))
	}
	return env
}

// exportInto is env with the exported variables in place of the
// caller's of the same names, so that each is set once, to the value
// the build itself uses.
func exportInto(env, exported []string) []string {
	set := map[string]bool{}
	for _, kv := range exported {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	out := make([]string, 0, len(env)+len(exported))
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			out = append(out, kv)
		}
	}
	return append(out, exported...)
}

// checksums are the sums to write: md5 and sha256 for --checksum or
// DIB_CHECKSUM=1, or those DIB_CHECKSUM lists.
func checksums(flag bool, env string) ([]string, error) {
	switch {
	case flag || env == "1":
		return []string{"md5", "sha256"}, nil
	case env == "" || env == "0":
		return nil, nil
	}
	kinds := splitList(env)
	for _, k := range kinds {
		if k != "md5" && k != "sha256" {
			return nil, fmt.Errorf("DIB_CHECKSUM=%s: want 1, or md5 and/or sha256, comma separated", env)
		}
	}
	return kinds, nil
}
