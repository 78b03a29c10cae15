package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/build"
	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/vmimage"
)

// checkpointFlags are how long and how much a build keeps of its trees.
type checkpointFlags struct {
	off     bool
	maxAge  age
	maxSize diskSize
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
}

// options are the build's checkpoints, nil when they are off.
func (c *checkpointFlags) options(env []string) (*build.Checkpoints, error) {
	if c.off || lookupEnv(env, "DIB_NO_CHECKPOINTS") != "" {
		return nil, nil
	}
	store, err := checkpointStore()
	if err != nil {
		return nil, err
	}
	return &build.Checkpoints{Store: store, Limits: c.limits()}, nil
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
	dir, err := vmimage.DefaultCacheDir()
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
		Short: "Show and prune what builds keep: the checkpoints of their trees",
		Args:  noArgs,
	}
	cmd.AddCommand(cacheLsCommand(), cachePruneCommand())
	return cmd
}

func cacheLsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the checkpoints: phase, size, age, uses, elements and the mirror's dates",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
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
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", checkpoint.Short(m.Key), m.Phase, on, mib(m.Size),
					checkpoint.Age(now.Sub(m.Made)), m.Uses, strings.Join(m.Elements, " "), suites(m.Suites))
				total += m.Size
			}
			w.Flush()
			fmt.Fprintf(out, "%d checkpoints, %s, in %s\n", len(all), mib(total), store.Dir)
			return nil
		},
	}
}

func cachePruneCommand() *cobra.Command {
	var c checkpointFlags
	var all bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove checkpoints older than --checkpoint-max-age, the least recently used beyond --cache-max-size, and leftovers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
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
			for i, m := range p.Checkpoints {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s after %s (%s): %s\n", checkpoint.Short(m.Key), m.Phase, mib(m.Size), p.Why[i])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed %d checkpoints and %d leftover files, %s\n", len(p.Checkpoints), p.Files, mib(p.Bytes))
			return nil
		},
	}
	c.registerLimits(cmd.Flags())
	cmd.Flags().BoolVar(&all, "all", false, "remove every checkpoint")
	return cmd
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
