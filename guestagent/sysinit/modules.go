package sysinit

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/u-root/u-root/pkg/kmodule"
)

// LoadModules loads every module named in list (one a line) with its
// dependencies, concurrently. A module the kernel has built in is fine.
func LoadModules(list string) error {
	f, err := os.Open(list)
	if err != nil {
		return err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if n := strings.TrimSpace(sc.Text()); n != "" && !strings.HasPrefix(n, "#") {
			names = append(names, n)
		}
	}
	p, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Probe(n, ""); err != nil && !strings.Contains(err.Error(), "could not find module path") {
				mu.Lock()
				errs = append(errs, fmt.Errorf("load module %s: %w", n, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
