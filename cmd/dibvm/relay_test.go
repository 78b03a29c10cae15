package main_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// relayPids lists the egress relays (dibvm __dibvm-egress-relay, one for
// each of the guest's connections to the proxy) whose socket is under dir.
func relayPids(dir string) []string {
	var pids []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte("\x00__dibvm-egress-relay\x00")) && bytes.Contains(b, []byte(dir)) {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}

// A guest that opens hundreds of idle connections to the proxy and holds
// them cannot make QEMU keep a relay process alive for each: the proxy
// closes those past its own bound, their relays exit although the guest
// holds its end, and no more than maxRelays run at once. None is left
// when the run ends.
func TestGuestCannotPileUpRelays(t *testing.T) {
	needVM(t)
	const (
		conns     = 300
		maxRelays = 128 // host/egress's bound on live relays
		atLeast   = 64  // the idle connections the proxy itself holds
	)
	dir, env := runDir(t)
	// bash's /dev/tcp opens each connection without a process of its
	// own: fork and exec are slow under TCG.
	script := fmt.Sprintf(`n=0
for ((i = 0; i < %d; i++)); do
	if exec {fd}<>/dev/tcp/10.0.2.100/3128; then n=$((n + 1)); fi
done 2>/dev/null
echo "opened $n"
sleep 5`, conns)
	type done struct {
		r   result
		err error
	}
	finished := make(chan done, 1)
	go func() {
		r, err := runDibvm(env, 5*time.Minute, "run", "--", "bash", "-c", script)
		finished <- done{r, err}
	}()
	peak := 0
	var d done
	for running := true; running; {
		select {
		case d = <-finished:
			running = false
		case <-time.After(50 * time.Millisecond):
			peak = max(peak, len(relayPids(dir)))
		}
	}
	if d.err != nil {
		t.Fatal(d.err)
	}
	if d.r.code != 0 || !strings.Contains(d.r.stdout, fmt.Sprintf("opened %d", conns)) {
		t.Fatalf("exit %d, stdout %q, want opened %d\n%s", d.r.code, d.r.stdout, conns, d.r.stderr)
	}
	t.Logf("at most %d relays at once for %d connections held", peak, conns)
	if peak > maxRelays {
		t.Errorf("%d relays ran at once for %d idle connections, want at most %d", peak, conns, maxRelays)
	}
	if peak < atLeast {
		t.Errorf("at most %d relays seen at once, want at least the %d connections the proxy holds: did the test see them?", peak, atLeast)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(relayPids(dir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("relays still running 5s after the run ended: pids %v", relayPids(dir))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
