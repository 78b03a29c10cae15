package progress

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/dibvm/dibvm/host/termsafe"
)

// Summary is how a build went: its time, each step's and hook's, and
// what it wrote.
type Summary struct {
	Total   time.Duration
	Resumed string // the checkpoint it resumed after, if any
	Steps   []Timed
	Hooks   []Timed
	Outputs []Event
	Err     string
}

// Timed is a step, or a hook of one, and how long it took.
type Timed struct {
	Step, Hook, Element string
	Took                time.Duration
}

func (s *Summary) add(e Event) {
	t := Timed{Step: e.Step, Hook: e.Hook, Element: e.Element, Took: seconds(e.Seconds)}
	if e.Kind == HookEnd {
		s.Hooks = append(s.Hooks, t)
	} else {
		s.Steps = append(s.Steps, t)
	}
}

// Slowest are the n hooks that took longest, the slowest first.
func (s *Summary) Slowest(n int) []Timed {
	h := slices.Clone(s.Hooks)
	slices.SortStableFunc(h, func(a, b Timed) int { return cmp.Compare(b.Took, a.Took) })
	return h[:min(n, len(h))]
}

// Print writes the summary for people; try, when set, is the command
// that tries the image. The guest named the steps and hooks (the host
// checked them against the phases and dib-run-parts' names before they
// became events) and element trees named the elements and outputs: all
// are shown through termsafe all the same, as the live views show them,
// since a Summary is anyone's to fill in.
func (s *Summary) Print(w io.Writer, try string) {
	how := "Built"
	if s.Err != "" {
		how = "Failed"
	}
	fmt.Fprintf(w, "%s in %s", how, Duration(s.Total))
	if s.Resumed != "" {
		fmt.Fprintf(w, ", resumed after %s", termsafe.String(s.Resumed))
	}
	fmt.Fprintln(w, ".")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(s.Steps) > 0 {
		fmt.Fprintln(w, "Steps:")
		for _, t := range s.Steps {
			fmt.Fprintf(tw, "  %s\t%s\n", termsafe.String(t.Step), Duration(t.Took))
		}
		tw.Flush()
	}
	if slow := s.Slowest(5); len(slow) > 0 {
		fmt.Fprintln(w, "Slowest hooks:")
		for _, t := range slow {
			fmt.Fprintf(tw, "  %s\t%s/%s (%s)\n", Duration(t.Took), termsafe.String(t.Step), termsafe.String(t.Hook), termsafe.String(t.Element))
		}
		tw.Flush()
	}
	if len(s.Outputs) > 0 {
		fmt.Fprintln(w, "Outputs:")
		for _, o := range s.Outputs {
			from := ""
			if o.EmittedBy != "" {
				from = "\tfrom " + termsafe.String(o.EmittedBy)
			}
			fmt.Fprintf(tw, "  %s\t%s\tsha256:%s%s\n", termsafe.String(o.Path), Size(o.Size), termsafe.String(o.SHA256), from)
		}
		tw.Flush()
	}
	if try != "" && s.Err == "" {
		fmt.Fprintf(w, "Try it: %s\n", termsafe.String(try))
	}
}

// Duration is d as people read a build's times: 4.2s, 3m07s, 1h02m.
func Duration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", d/time.Minute, d%time.Minute/time.Second)
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%dh%02dm", d/time.Hour, d%time.Hour/time.Minute)
}

// Size is n bytes as people read a file's size.
func Size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
