package plan

import (
	"strings"
	"testing"
)

// The notice of withheld variables says how the command at hand passes
// one.
func TestWithheldNoticeNamesTheFlag(t *testing.T) {
	for pass, want := range map[string]string{"": "pass one with --env NAME)", "-e NAME=VALUE": "pass one with -e NAME=VALUE)"} {
		var out strings.Builder
		o := Options{Output: "/tmp/img", Environ: []string{"GITHUB_TOKEN=x"}, PassEnv: pass, Stdout: &out}
		if _, err := newSpec(o, nil); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "GITHUB_TOKEN") {
			t.Errorf("PassEnv %q: the notice %q, want it to say %q", pass, out.String(), want)
		}
	}
}
