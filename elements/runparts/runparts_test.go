package runparts

import (
	"io/fs"
	"math/rand/v2"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSortNumericMatchesGNUSort(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"10-a 9-y abc 01-z", "abc 01-z 9-y 10-a"},
		// Checked against DIB's dib-run-parts under LANG=C sort -n.
		{"10-b 100-a 2-c 20-a foo 10-a 00-a 0-b -5-x 05-y 5-y Z _a 1a 01",
			"-5-x 0-b 00-a Z _a foo 01 1a 2-c 05-y 5-y 10-a 10-b 20-a 100-a"},
		{"99999999999999999999999-big 100000000000000000000000-bigger 2", "2 99999999999999999999999-big 100000000000000000000000-bigger"},
		{"-10-x -9-y -0-z 0-a -", "-10-x -9-y - -0-z 0-a"},
	} {
		names := strings.Fields(c.in)
		SortNumeric(names)
		if got := strings.Join(names, " "); got != c.want {
			t.Errorf("sort -n of %q = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestScripts(t *testing.T) {
	run, skipped := Scripts([]Entry{
		{"10-b", 0o755}, {"100-a", 0o755}, {"2-c", 0o700}, {"foo", 0o755},
		{"bad.name", 0o755}, {"50-nonexec", 0o644}, {"30-subdir", fs.ModeDir | 0o755},
		{"foo~", 0o755}, {"01-ok", 0o500},
	})
	if want := []string{"foo", "01-ok", "2-c", "10-b", "100-a"}; !reflect.DeepEqual(run, want) {
		t.Errorf("run %v, want %v", run, want)
	}
	want := []Skipped{
		{"bad.name", "name does not match ^[0-9A-Za-z_-]+$"},
		{"50-nonexec", "not executable"},
		{"foo~", "name does not match ^[0-9A-Za-z_-]+$"},
	}
	if !reflect.DeepEqual(skipped, want) {
		t.Errorf("skipped %v, want %v", skipped, want)
	}
}

func TestEnvironmentFiles(t *testing.T) {
	src, skipped := EnvironmentFiles([]Entry{
		{"3-x", 0o644}, {"20-y.bash", 0o644}, {"100-z", 0o755}, {"bad~", 0o644}, {"sub", fs.ModeDir | 0o755},
	})
	if want := []string{"100-z", "20-y.bash", "3-x"}; !reflect.DeepEqual(src, want) {
		t.Errorf("source %v, want %v (byte-wise, as DIB's full-path sort -n gives)", src, want)
	}
	if len(skipped) != 1 || skipped[0].Name != "bad~" {
		t.Errorf("skipped %v", skipped)
	}
}

func TestProfileMatchesDIB(t *testing.T) {
	got := Profile("dib-run-parts ", "install.d", []Timing{
		{"foo", 17 * time.Millisecond}, {"2-c", 17 * time.Millisecond}, {"10-a", 17 * time.Millisecond},
		{"100-a", 21 * time.Millisecond},
	})
	want := `dib-run-parts ----------------------- PROFILING -----------------------
dib-run-parts 
dib-run-parts Target: install.d
dib-run-parts 
dib-run-parts Script                                     Seconds
dib-run-parts ---------------------------------------  ----------
dib-run-parts 
dib-run-parts 10-a                                          0.017
dib-run-parts 100-a                                         0.021
dib-run-parts 2-c                                           0.017
dib-run-parts foo                                           0.017
dib-run-parts 
dib-run-parts --------------------- END PROFILING ---------------------
`
	if got != want {
		t.Errorf("profile:\n%s\nwant:\n%s", got, want)
	}
}

// Differential check against the system's GNU sort on random names.
func TestSortNumericAgainstGNUSort(t *testing.T) {
	out, err := exec.Command("sort", "--version").Output()
	if err != nil || !strings.Contains(string(out), "GNU") {
		t.Fatalf("this test compares with GNU sort (coreutils), which was not found: %v", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := "0123456789-_aZ"
	for round := 0; round < 50; round++ {
		names := make([]string, 30)
		for i := range names {
			b := make([]byte, 1+rng.IntN(6))
			for j := range b {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			}
			names[i] = string(b)
		}
		cmd := exec.Command("sort", "-n")
		cmd.Env = []string{"LC_ALL=C"}
		cmd.Stdin = strings.NewReader(strings.Join(names, "\n") + "\n")
		want, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		SortNumeric(names)
		if got := strings.Join(names, "\n") + "\n"; got != string(want) {
			t.Fatalf("differs from sort -n:\n got %q\nwant %q", got, want)
		}
	}
}
