package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// --helper-tools is repeatable and comma-separated; where it is not
// given, DIBVM_HELPER_TOOLS counts.
func TestHelperToolNames(t *testing.T) {
	t.Setenv(helperToolsEnv, "rpm, other")
	for _, c := range []struct {
		flag []string
		want []string
	}{
		{nil, []string{"rpm", "other"}},
		{[]string{"rpm"}, []string{"rpm"}},
		{[]string{"rpm,rpm", " rpm "}, []string{"rpm", "rpm", "rpm"}},
		{[]string{""}, nil},
	} {
		f := &vmFlags{helperTools: c.flag}
		if got := f.helperToolNames(); !slices.Equal(got, c.want) {
			t.Errorf("--helper-tools %q: %q, want %q", c.flag, got, c.want)
		}
	}
}

// A layer dibvm does not have is a usage error naming where it came
// from and the layers there are.
func TestCheckHelperTools(t *testing.T) {
	t.Setenv(helperToolsEnv, "")
	os.Unsetenv(helperToolsEnv)
	if err := (&vmFlags{}).checkHelperTools(); err != nil {
		t.Errorf("none asked for: %v", err)
	}
	if err := (&vmFlags{helperTools: []string{"rpm"}}).checkHelperTools(); err != nil {
		t.Errorf("--helper-tools rpm: %v", err)
	}
	err := (&vmFlags{helperTools: []string{"rpm", "yum"}}).checkHelperTools()
	if _, ok := err.(*usageError); !ok || err.Error() != `--helper-tools rpm,yum: no helper tools layer "yum": dibvm has container, rpm` {
		t.Errorf("--helper-tools rpm,yum: %v", err)
	}
	t.Setenv(helperToolsEnv, "apk")
	err = (&vmFlags{}).checkHelperTools()
	if err == nil || !strings.HasPrefix(err.Error(), `DIBVM_HELPER_TOOLS=apk (for --helper-tools): no helper tools layer "apk"`) {
		t.Errorf("DIBVM_HELPER_TOOLS=apk: %v", err)
	}
	// The flag given wins over the variable.
	if err := (&vmFlags{helperTools: []string{"rpm"}}).checkHelperTools(); err != nil {
		t.Errorf("--helper-tools rpm over DIBVM_HELPER_TOOLS=apk: %v", err)
	}
}

// create hands the layers asked for to the plan, and refuses an unknown
// one with the rest of the command line's problems.
func TestCreateHelperTools(t *testing.T) {
	t.Setenv(helperToolsEnv, "")
	os.Unsetenv(helperToolsEnv)
	parse := func(args ...string) (*createFlags, *cobra.Command) {
		dir := t.TempDir()
		c := &createFlags{}
		cmd := &cobra.Command{}
		c.register(cmd)
		args = append([]string{"-o", filepath.Join(dir, "img"), "-t", "tar", "--image-cache", dir, "--no-checkpoints", "--progress", "plain"}, args...)
		if err := cmd.Flags().Parse(args); err != nil {
			t.Fatal(err)
		}
		return c, cmd
	}
	c, cmd := parse("--helper-tools", "rpm")
	o, err := c.check(cmd.Flags(), []string{"vm"})
	if err != nil && strings.Contains(err.Error(), "helper-tools") {
		t.Fatalf("--helper-tools rpm refused: %v", err)
	}
	if !slices.Equal(o.HelperTools, []string{"rpm"}) {
		t.Errorf("the plan's HelperTools = %q, want rpm", o.HelperTools)
	}
	c, cmd = parse("--helper-tools", "yum", "--cpus", "0")
	_, err = c.check(cmd.Flags(), []string{"vm"})
	if err == nil || !strings.Contains(err.Error(), `--helper-tools yum: no helper tools layer "yum": dibvm has container, rpm`) || !strings.Contains(err.Error(), "--cpus 0") {
		t.Errorf("--helper-tools yum --cpus 0: %v", err)
	}
}
