package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/lockfile"
	"github.com/dibvm/dibvm/host/plan"
)

// packagesFrom reads the lock file --packages-from names, before the VM
// boots: one that cannot be replayed is among the problems, and so,
// offline, are the files it pins that the image cache does not hold.
func (c *createFlags) packagesFrom(o *plan.Options, p *problems) *plan.PackagesFrom {
	if c.lock == "" {
		return nil
	}
	data, err := os.ReadFile(c.lock)
	if err != nil {
		p.add("--packages-from %s: %v", c.lock, err)
		return nil
	}
	l, err := lockfile.Parse(data)
	if err != nil {
		p.add("--packages-from %s: %v", c.lock, err)
		return nil
	}
	if o.Offline && o.ImageCache != "" {
		cache := &egress.Cache{Dir: o.ImageCache}
		var missing []string
		for _, f := range l.Files() {
			if !cache.Has(f.URL, f.SHA256) {
				missing = append(missing, f.URL)
			}
		}
		if len(missing) > 0 {
			p.add("--packages-from %s: offline, and the image cache %s lacks %d of the files it pins: %s", c.lock, o.ImageCache, len(missing), listed(missing, 10))
		}
	}
	sum := sha256.Sum256(data)
	return &plan.PackagesFrom{Name: c.lock, SHA256: hex.EncodeToString(sum[:]), Lock: l}
}

// listed is the first n of items, and how many more there are.
func listed(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}
