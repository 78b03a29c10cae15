package main_test

import (
	"testing"
	"time"
)

// Once cached, the appliance is found without the network: with every
// HTTP request sent to a dead proxy, a run still works while a refresh,
// which must ask the mirror, fails.
func TestCachedApplianceWorksOffline(t *testing.T) {
	needVM(t)
	offline := []string{"http_proxy=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9"}
	if r := dibvm(t, offline, 5*time.Minute, "run", "--network", "none", "--", "true"); r.code != 0 {
		t.Fatalf("run with the network cut failed:\n%s", r.stderr)
	}
	if r := dibvm(t, offline, time.Minute, "appliance", "build"); r.code == 0 {
		t.Error("appliance build succeeded with the network cut: the test does not cut it")
	}
}

// Two dibvm processes building the same appliance at once must both
// succeed and leave one good cache entry.
func TestConcurrentApplianceBuilds(t *testing.T) {
	needVM(t)
	env := []string{"DIBVM_CACHE_DIR=" + t.TempDir()}
	type outcome struct {
		r   result
		err error
	}
	outcomes := make(chan outcome, 2)
	for range 2 {
		go func() {
			r, err := runDibvm(env, 10*time.Minute, "appliance", "build")
			outcomes <- outcome{r, err}
		}()
	}
	for range 2 {
		o := <-outcomes
		if o.err != nil {
			t.Fatal(o.err)
		}
		if o.r.code != 0 {
			t.Errorf("concurrent build failed:\n%s", o.r.stderr)
		}
	}
	if r := dibvm(t, env, 5*time.Minute, "run", "--", "true"); r.code != 0 {
		t.Errorf("the appliance the concurrent builds left does not boot:\n%s", r.stderr)
	}
}
