package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/agentbin"
	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/envvar"
	"github.com/dibvm/dibvm/host/plan"
	"github.com/dibvm/dibvm/host/progress"
	"github.com/dibvm/dibvm/host/termsafe"
	"github.com/dibvm/dibvm/vmimage"
)

// checkpointFlags are how long and how much a build keeps of its trees.
type checkpointFlags struct {
	off     bool
	maxAge  age
	maxSize diskSize
	shared  sharedCacheFlags
}

// Defaults: a week, as DIB's users refresh their debootstrap tarballs,
// and room for a few element sets' worth of trees.
const (
	defaultCheckpointAge  = 7 * 24 * time.Hour
	defaultCheckpointSize = 20 << 30
)

func (c *checkpointFlags) registerLimits(f *pflag.FlagSet) {
	c.maxAge = age(defaultCheckpointAge)
	c.maxSize = diskSize(defaultCheckpointSize)
	f.Var(&c.maxAge, "checkpoint-max-age", "resume only from checkpoints younger than this, e.g. 36h or 7d: mirrors move on")
	f.Var(&c.maxSize, "cache-max-size", "most disk the checkpoints may take; the least recently used go first, e.g. 20G")
}

func (c *checkpointFlags) register(f *pflag.FlagSet) {
	f.BoolVar(&c.off, "no-checkpoints", false, "build from the start, and keep no checkpoints (or set DIB_NO_CHECKPOINTS)")
	c.registerLimits(f)
	c.shared.register(f)
}

// options are the build's checkpoints, nil when they are off.
func (c *checkpointFlags) options(env []string) (*plan.Checkpoints, error) {
	if c.off || envvar.Get(env, "DIB_NO_CHECKPOINTS") != "" {
		if c.shared.any(env) {
			return nil, errors.New("--cache-from and --cache-to share checkpoints, which --no-checkpoints (or DIB_NO_CHECKPOINTS) turns off: drop one or the other")
		}
		return nil, nil
	}
	store, err := checkpointStore()
	if err != nil {
		return nil, err
	}
	shared, err := c.shared.shared(env, c.limits())
	if err != nil {
		return nil, err
	}
	out := &plan.Checkpoints{Store: store, Limits: c.limits()}
	if shared != nil {
		out.Shared = shared
	}
	return out, nil
}

func (c *checkpointFlags) limits() checkpoint.Limits {
	return checkpoint.Limits{MaxAge: time.Duration(c.maxAge), MaxSize: int64(c.maxSize)}
}

// checkpointStore is dibvm/checkpoints in the user's cache directory,
// or DIBVM_CHECKPOINTS_DIR.
func checkpointStore() (*checkpoint.Store, error) {
	if d := os.Getenv("DIBVM_CHECKPOINTS_DIR"); d != "" {
		return &checkpoint.Store{Dir: d}, nil
	}
	dir, err := cacheDir()
	if err != nil {
		return nil, err
	}
	return &checkpoint.Store{Dir: filepath.Join(dir, "checkpoints")}, nil
}

// age is a duration flag that also takes days ("7d").
type age time.Duration

func (a *age) String() string {
	d := time.Duration(*a)
	if d%(24*time.Hour) == 0 && d > 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return d.String()
}

func (a *age) Type() string { return "duration" }

func (a *age) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || !(days > 0) || days > 3650 {
			return errors.New("want a duration such as 7d or 36h")
		}
		*a = age(days * float64(24*time.Hour))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return errors.New("want a duration such as 7d or 36h")
	}
	*a = age(d)
	return nil
}

func cacheCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Show and prune what dibvm keeps: helper appliances, package downloads, checkpoints of trees",
	}
	cmd.AddCommand(cacheLsCommand(), cacheDuCommand(), cachePruneCommand(), cachePushCommand(), cachePullCommand())
	return cmd
}

// cacheArea is one kind of thing dibvm keeps, and where.
type cacheArea struct {
	name, what string
	dirs       []string
}

// cacheAreas are what dibvm keeps in the user's cache directory (or
// where the variables that move them say).
func cacheAreas() ([]cacheArea, error) {
	dir, err := cacheDir()
	if err != nil {
		return nil, err
	}
	images, err := defaultImageCache()
	if err != nil {
		return nil, err
	}
	if d := os.Getenv("DIB_IMAGE_CACHE"); d != "" {
		images = d
	}
	store, err := checkpointStore()
	if err != nil {
		return nil, err
	}
	areas := []cacheArea{
		{"appliance", "the helper VM's kernel and initramfs, and the Debian base and tool layers they are made from", []string{filepath.Join(dir, "appliance"), filepath.Join(dir, "base"), filepath.Join(dir, "layer")}},
		{"packages", "package downloads: the builds' (the image cache) and the appliance's", []string{images, filepath.Join(dir, "debs")}},
		{"checkpoints", "trees kept after a build's phases, to resume from", []string{store.Dir}},
	}
	if t := timings(); t != nil {
		areas = append(areas, cacheArea{"timings", "how long each element set's last build took, for estimates", []string{t.Dir}})
	}
	return areas, nil
}

// usage is the size and number of the files under dirs.
func usage(dirs ...string) (size int64, files int) {
	for _, d := range dirs {
		filepath.WalkDir(d, func(_ string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				if fi, err := e.Info(); err == nil {
					size += fi.Size()
					files++
				}
			}
			return nil
		})
	}
	return size, files
}

func cacheDuCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "du",
		Short: "Show how much disk each kind of cached thing takes",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			areas, err := cacheAreas()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "KIND\tSIZE\tFILES\tWHERE")
			var total int64
			for _, a := range areas {
				size, files := usage(a.dirs...)
				total += size
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", a.name, progress.Size(size), files, strings.Join(a.dirs, " "))
			}
			fmt.Fprintf(w, "total\t%s\t\t\n", progress.Size(total))
			return w.Flush()
		},
	}
}

// currentAppliances are the appliance specs and agents of this dibvm,
// for each architecture, with mirror: what it would boot. Without them
// (a dibvm built without its agents) nothing can be said unused.
func currentAppliances(mirror string) ([]vmimage.Spec, []vmimage.Agent, error) {
	var specs []vmimage.Spec
	var agents []vmimage.Agent
	for _, arch := range []string{"amd64", "arm64"} {
		spec, err := vmimage.DefaultSpec(mirror, arch)
		if err != nil {
			return nil, nil, err
		}
		agent, err := agentbin.Load(arch)
		if err != nil {
			return nil, nil, fmt.Errorf("this dibvm cannot tell which appliances it uses: %w", err)
		}
		specs, agents = append(specs, spec), append(agents, agent)
	}
	return specs, agents, nil
}

func cacheLsCommand() *cobra.Command {
	var rf remoteFlags
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the helper appliances, the package downloads, and the checkpoints: phase, size, age, uses, elements and the mirror's dates; with --remote, the checkpoints in a registry",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if rf.ref != "" {
				return cacheLsRemote(cmd, &rf)
			}
			// Which appliances are this dibvm's depends on the mirror.
			if err := (&vmFlags{mirror: os.Getenv("DIBVM_MIRROR")}).checkMirror(); err != nil {
				return err
			}
			if err := listAppliances(cmd.OutOrStdout()); err != nil {
				return err
			}
			store, err := checkpointStore()
			if err != nil {
				return err
			}
			all, err := store.List()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(all) == 0 {
				fmt.Fprintf(out, "No checkpoints in %s\n", store.Dir)
				return nil
			}
			now := time.Now()
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "CHECKPOINT\tAFTER\tON\tSIZE\tAGE\tUSED\tELEMENTS\tMIRROR")
			var total int64
			for _, m := range all {
				on := "-"
				if m.Parent != "" {
					on = checkpoint.Short(m.Parent)
				}
				// The suites are the guest's word, kept in the store
				// (Publish checks them, but not those kept before it
				// did), and the names come from element trees: shown,
				// never obeyed.
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", checkpoint.Short(m.Key), termsafe.String(m.Phase), on, mib(m.Size),
					checkpoint.Age(now.Sub(m.Made)), m.Uses, termsafe.String(strings.Join(m.Elements, " ")), termsafe.String(suites(m.Suites)))
				total += m.Size
			}
			w.Flush()
			fmt.Fprintf(out, "%d checkpoints, %s, in %s\n", len(all), mib(total), store.Dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&rf.ref, "remote", "", "list the checkpoints in this registry repository (REGISTRY/PATH) instead")
	cmd.Flags().StringVar(&rf.trust, "cache-trust", "", "with --remote: the OpenSSH public keys whose signatures to check, one a line as in allowed_signers")
	return cmd
}

// listAppliances lists the cached appliances, and sums up the package
// downloads.
func listAppliances(out io.Writer) error {
	dir, err := cacheDir()
	if err != nil {
		return err
	}
	unused := map[string]bool{}
	specs, agents, err := currentAppliances(os.Getenv("DIBVM_MIRROR"))
	if err == nil {
		for _, d := range (&vmimage.Cache{Dir: dir}).Unused(specs, agents) {
			unused[d] = true
		}
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "APPLIANCE\tSIZE\tMADE\tUSED BY THIS DIBVM")
	for _, kind := range []string{"appliance", "base", "layer"} {
		entries, _ := os.ReadDir(filepath.Join(dir, kind))
		for _, e := range entries {
			d := filepath.Join(dir, kind, e.Name())
			size, _ := usage(d)
			made := "-"
			if fi, err := e.Info(); err == nil {
				made = checkpoint.Age(time.Since(fi.ModTime())) + " ago"
			}
			used := "yes"
			if unused[d] {
				used = "no (cache prune removes it)"
			}
			fmt.Fprintf(w, "%s/%s\t%s\t%s\t%s\n", kind, e.Name(), progress.Size(size), made, used)
		}
	}
	w.Flush()
	areas, err := cacheAreas()
	if err != nil {
		return err
	}
	for _, a := range areas {
		if a.name == "packages" {
			size, files := usage(a.dirs...)
			fmt.Fprintf(out, "\n%d package downloads, %s, in %s\n\n", files, progress.Size(size), strings.Join(a.dirs, " and "))
		}
	}
	return nil
}

func cachePruneCommand() *cobra.Command {
	var c checkpointFlags
	var all bool
	var packageAge age
	var vf vmFlags
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove checkpoints older than --checkpoint-max-age, the least recently used beyond --cache-max-size, and leftovers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Before anything is removed.
			if err := vf.checkMirror(); err != nil {
				return err
			}
			store, err := checkpointStore()
			if err != nil {
				return err
			}
			lim := c.limits()
			if all {
				// Every checkpoint is older than this.
				lim.MaxAge = time.Nanosecond
			}
			p, err := store.Prune(lim, time.Now())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for i, m := range p.Checkpoints {
				fmt.Fprintf(out, "removed %s after %s (%s): %s\n", checkpoint.Short(m.Key), m.Phase, mib(m.Size), p.Why[i])
			}
			fmt.Fprintf(out, "Removed %d checkpoints and %d leftover files, %s\n", len(p.Checkpoints), p.Files, mib(p.Bytes))
			n, size, err := pruneAppliances(out, vf.mirror)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Removed %d appliances, bases and tool layers this dibvm does not use, %s\n", n, mib(size))
			maxAge := time.Duration(packageAge)
			if all {
				maxAge = 0
			}
			n, size, err = prunePackages(maxAge)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Removed %d package downloads older than %s, %s\n", n, packageAge.String(), mib(size))
			return nil
		},
	}
	c.registerLimits(cmd.Flags())
	packageAge = age(30 * 24 * time.Hour)
	cmd.Flags().Var(&packageAge, "package-max-age", "remove package downloads older than this, e.g. 30d: Debian's point releases replace them")
	cmd.Flags().BoolVar(&all, "all", false, "remove every checkpoint and package download (the appliances this dibvm uses stay)")
	vf.registerMirror(cmd.Flags())
	return cmd
}

// pruneAppliances removes the appliances, bases and tool layers no current
// appliance of this dibvm (with mirror) uses.
func pruneAppliances(out io.Writer, mirror string) (int, int64, error) {
	dir, err := cacheDir()
	if err != nil {
		return 0, 0, err
	}
	specs, agents, err := currentAppliances(mirror)
	if err != nil {
		return 0, 0, err
	}
	var total int64
	unused := (&vmimage.Cache{Dir: dir}).Unused(specs, agents)
	for _, d := range unused {
		size, _ := usage(d)
		if err := os.RemoveAll(d); err != nil {
			return 0, total, err
		}
		total += size
		fmt.Fprintf(out, "removed %s (%s)\n", d, mib(size))
	}
	return len(unused), total, nil
}

// ownDownload is how dibvm names the downloads it keeps: the egress
// proxy's in the image cache (a hash of the URL, "_", the file's name)
// and the appliance's (its SHA-256, "-", its name). The image cache may
// be DIB's own (DIB_IMAGE_CACHE), holding git clones and more: nothing
// else there is dibvm's to remove.
var ownDownload = regexp.MustCompile(`^([0-9a-f]{32}_|[0-9a-f]{64}-)[A-Za-z0-9._+~-]+$`)

// prunePackages removes the package downloads older than maxAge, by
// when they were downloaded; all of them for 0. It looks only at the
// top of each directory, and at files named as dibvm names them, and
// leaves a download under way (".download-*") alone.
func prunePackages(maxAge time.Duration) (int, int64, error) {
	areas, err := cacheAreas()
	if err != nil {
		return 0, 0, err
	}
	n, size := 0, int64(0)
	for _, a := range areas {
		if a.name != "packages" {
			continue
		}
		for _, d := range a.dirs {
			entries, err := os.ReadDir(d)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return n, size, err
			}
			for _, e := range entries {
				if !e.Type().IsRegular() || !ownDownload.MatchString(e.Name()) {
					continue
				}
				fi, err := e.Info()
				if err != nil || time.Since(fi.ModTime()) < maxAge {
					continue
				}
				if err := os.Remove(filepath.Join(d, e.Name())); err != nil {
					return n, size, err
				}
				n++
				size += fi.Size()
			}
		}
	}
	return n, size, nil
}

func mib(n int64) string {
	if n >= 10<<30 {
		return fmt.Sprintf("%.0f GiB", float64(n)/(1<<30))
	}
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// suites says the APT suites a checkpoint saw and the date of each.
func suites(ss []api.Suite) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name+" "+s.Date)
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, "; ")
}
