package cli

import (
	"strconv"
	"time"

	"github.com/dibvm/dibvm/host/envvar"
	"github.com/dibvm/dibvm/host/plan"
)

// reproducible is what --reproducible, --seed and SOURCE_DATE_EPOCH ask
// for: nil for a build that may differ from run to run, as DIB's do.
// SOURCE_DATE_EPOCH alone asks for it, as reproducible-builds.org has
// every tool read it; --seed implies it.
func (c *createFlags) reproducible(env []string, now time.Time, p *problems) *plan.Reproducible {
	v, set := envvar.Lookup(env, "SOURCE_DATE_EPOCH")
	if !c.reproduce && !set && c.seed == "" {
		return nil
	}
	r := &plan.Reproducible{Epoch: plan.DefaultEpoch, Seed: c.seed}
	if !set {
		return r
	}
	epoch, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err != nil || epoch < 0:
		p.add("SOURCE_DATE_EPOCH=%s: give the seconds since 1970-01-01 00:00 UTC, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%%ct)", v)
	case epoch > now.Unix():
		// Times are clamped to the epoch, not set to it: a later one
		// would leave what the build writes with the times it wrote it.
		p.add("SOURCE_DATE_EPOCH=%s is in the future (%s): give a time in the past, such as your last commit's", v, time.Unix(epoch, 0).UTC().Format(time.RFC3339))
	default:
		r.Epoch = epoch
	}
	return r
}
