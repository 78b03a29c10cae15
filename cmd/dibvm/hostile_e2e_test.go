//go:build e2e

package main_test

// The hostile-element cases that take minutes under TCG, for
// make e2e-full (see hostile_test.go).

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// A fork bomb does not keep the build, or dibvm, alive: --timeout ends
// it, and nothing is left behind.
func TestE2EHostileForkBomb(t *testing.T) {
	h := newHostileRun(t)
	r := h.create(t, nil, 10*time.Minute, []string{"--timeout", "2m"}, "hostile-forkbomb")
	failed(t, r, "the build took longer than --timeout 2m0s and was stopped")
	t.Logf("stopped after %s", r.took.Round(time.Second))
	h.nothingLeft(t)
}

// tailWriter counts what is written and keeps only its end.
type tailWriter struct {
	mu   sync.Mutex
	n    int64
	last []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += int64(len(p))
	w.last = append(w.last, p...)
	if len(w.last) > 4096 {
		w.last = w.last[len(w.last)-4096:]
	}
	return len(p), nil
}

// A GiB of output on one line passes through the host without the host
// holding it: dibvm's own peak memory stays far below it.
func TestE2EHostileFlood(t *testing.T) {
	h := newHostileRun(t)
	out := &tailWriter{}
	start := time.Now()
	r := h.run(t, out, nil, 30*time.Minute, "create", "-n", "-t", "tar", "-o", h.out+"/img", "hostile-flood")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, out.last, r.stderr)
	}
	if out.n < 1<<30 || !bytes.Contains(out.last, []byte("flood done")) {
		t.Errorf("passed on %d bytes, ending %q", out.n, out.last)
	}
	t.Logf("passed on %d MiB in %s; dibvm's peak memory %d MiB", out.n>>20, time.Since(start).Round(time.Second), r.peakRSS>>20)
	if r.peakRSS == 0 || r.peakRSS > 256<<20 {
		t.Errorf("dibvm's peak memory was %d MiB while passing a GiB on", r.peakRSS>>20)
	}
}
