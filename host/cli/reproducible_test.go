package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/host/plan"
)

// SOURCE_DATE_EPOCH alone, --reproducible or --seed make a build
// reproducible; a bad or future epoch is refused, naming the variable.
func TestReproducibleSettings(t *testing.T) {
	now := time.Unix(1800000000, 0)
	for _, c := range []struct {
		name      string
		flag      bool
		seed      string
		env       []string
		want      *plan.Reproducible
		wantError string
	}{
		{name: "none", want: nil},
		{name: "the variable", env: []string{"SOURCE_DATE_EPOCH=1700000000"}, want: &plan.Reproducible{Epoch: 1700000000}},
		{name: "the flag", flag: true, want: &plan.Reproducible{Epoch: plan.DefaultEpoch}},
		{name: "a seed", seed: "s", env: []string{"SOURCE_DATE_EPOCH=5"}, want: &plan.Reproducible{Epoch: 5, Seed: "s"}},
		{name: "not a number", env: []string{"SOURCE_DATE_EPOCH=yesterday"}, wantError: "SOURCE_DATE_EPOCH=yesterday: give the seconds since 1970-01-01"},
		{name: "negative", env: []string{"SOURCE_DATE_EPOCH=-1"}, wantError: "SOURCE_DATE_EPOCH=-1: give the seconds"},
		{name: "the future", env: []string{"SOURCE_DATE_EPOCH=1900000000"}, wantError: "SOURCE_DATE_EPOCH=1900000000 is in the future (2030-03-17T17:46:40Z)"},
	} {
		c := c
		f := &createFlags{reproduce: c.flag, seed: c.seed}
		var p problems
		got := f.reproducible(c.env, now, &p)
		if c.wantError != "" {
			if len(p) != 1 || !strings.Contains(p[0], c.wantError) {
				t.Errorf("%s: problems %q, want %q", c.name, p, c.wantError)
			}
			continue
		}
		if len(p) > 0 || (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
			t.Errorf("%s: %+v %q, want %+v", c.name, got, p, c.want)
		}
	}
}
