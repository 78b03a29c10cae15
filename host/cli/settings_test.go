package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/host/hookenv"
	"github.com/dibvm/dibvm/host/plan"
)

// Each of DIB's settings is resolved once: the build's field and the
// one variable of that name the hooks get agree, a flag given winning
// over the caller's variable, as disk-image-create's export does.
func TestCreateResolvesSettingsOnce(t *testing.T) {
	// The variables under test, unset unless a case sets them.
	names := []string{"ROOT_LABEL", "DIB_ROOT_LABEL", "DIB_OFFLINE", "DIB_DEFAULT_INSTALLTYPE",
		"FS_TYPE", "break", "DIB_BLOCK_DEVICE_CONFIG", "ELEMENTS_PATH", "DIB_MANIFEST_SAVE_DIR"}
	type settings struct {
		rootLabel, installType, fsType, brk, blockDevice, elementsPath, manifestDir string
		offline                                                                     bool
	}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want settings
		// hooks are the variables Environ must set exactly once, to
		// these values ("" for not at all).
		hooks map[string]string
	}{
		{"nothing set", nil, nil, settings{}, map[string]string{"DIB_ROOT_LABEL": "", "DIB_OFFLINE": "", "DIB_DEFAULT_INSTALLTYPE": ""}},
		{"--root-label over DIB_ROOT_LABEL", []string{"--root-label", "flag"}, []string{"DIB_ROOT_LABEL=caller"},
			settings{rootLabel: "flag"}, map[string]string{"DIB_ROOT_LABEL": "flag"}},
		{"ROOT_LABEL over DIB_ROOT_LABEL", nil, []string{"ROOT_LABEL=short", "DIB_ROOT_LABEL=caller"},
			settings{rootLabel: "short"}, map[string]string{"DIB_ROOT_LABEL": "short"}},
		{"DIB_ROOT_LABEL alone", nil, []string{"DIB_ROOT_LABEL=caller"},
			settings{rootLabel: "caller"}, map[string]string{"DIB_ROOT_LABEL": "caller"}},
		{"--offline exports 1", []string{"--offline"}, []string{"DIB_OFFLINE=yes"},
			settings{offline: true}, map[string]string{"DIB_OFFLINE": "1"}},
		{"DIB_OFFLINE as the caller set it", nil, []string{"DIB_OFFLINE=yes"},
			settings{offline: true}, map[string]string{"DIB_OFFLINE": "yes"}},
		{"--install-type over DIB_DEFAULT_INSTALLTYPE", []string{"--install-type", "source"}, []string{"DIB_DEFAULT_INSTALLTYPE=package"},
			settings{installType: "source"}, map[string]string{"DIB_DEFAULT_INSTALLTYPE": "source"}},
		{"DIB_DEFAULT_INSTALLTYPE alone", nil, []string{"DIB_DEFAULT_INSTALLTYPE=package"},
			settings{installType: "package"}, map[string]string{"DIB_DEFAULT_INSTALLTYPE": "package"}},
		{"variables without flags", nil,
			[]string{"FS_TYPE=xfs", "break=after-install", "DIB_BLOCK_DEVICE_CONFIG=file:///l.yaml", "ELEMENTS_PATH=/e", "DIB_MANIFEST_SAVE_DIR=/m"},
			settings{fsType: "xfs", brk: "after-install", blockDevice: "file:///l.yaml", elementsPath: "/e", manifestDir: "/m"},
			map[string]string{"FS_TYPE": "xfs", "break": "after-install"}},
		{"-c keeps the flags only", []string{"-c", "--root-label", "flag"}, []string{"DIB_ROOT_LABEL=caller", "FS_TYPE=xfs"},
			settings{rootLabel: "flag"}, map[string]string{"DIB_ROOT_LABEL": "flag", "FS_TYPE": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range names {
				t.Setenv(n, "") // restored after the test
				os.Unsetenv(n)
			}
			for _, kv := range tc.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			dir := t.TempDir()
			c := &createFlags{}
			cmd := &cobra.Command{}
			c.register(cmd)
			args := append([]string{"-o", filepath.Join(dir, "img"), "-t", "tar", "--image-cache", dir, "--no-checkpoints", "--progress", "plain"}, tc.args...)
			if err := cmd.Flags().Parse(args); err != nil {
				t.Fatal(err)
			}
			o, closeLog, err := c.options(cmd.Flags(), []string{"vm"})
			if err != nil {
				t.Logf("options: %v", err) // the settings are resolved all the same
			} else {
				closeLog()
			}
			got := settings{o.RootLabel, o.InstallType, o.FSType, o.Break, o.BlockDeviceConfig, o.ElementsPath, o.ManifestSaveDir, o.Offline}
			if got != tc.want {
				t.Errorf("settings %+v, want %+v", got, tc.want)
			}
			for name, want := range tc.hooks {
				var values []string
				for _, kv := range o.Environ {
					if k, v, _ := strings.Cut(kv, "="); k == name {
						values = append(values, v)
					}
				}
				if want == "" && len(values) > 0 || want != "" && (len(values) != 1 || values[0] != want) {
					t.Errorf("Environ sets %s to %q, want %q once", name, values, want)
				}
			}
		})
	}
}

// --env NAME takes its value from the build's environment, else from the
// one dibvm was started with (-c clears only the build's); a NAME set
// nowhere is refused when the build is prepared, in the same words.
func TestCreateResolvesEnvNames(t *testing.T) {
	t.Setenv("DIBVM_TEST_FROM_HERE", "here")
	t.Setenv("DIBVM_TEST_UNSET", "")
	os.Unsetenv("DIBVM_TEST_UNSET")
	dir := t.TempDir()
	c := &createFlags{}
	cmd := &cobra.Command{}
	c.register(cmd)
	args := []string{"-c", "-o", filepath.Join(dir, "img"), "-t", "tar", "--image-cache", dir, "--no-checkpoints", "--progress", "plain",
		"--root-label", "flag", "--env", "DIBVM_TEST_FROM_HERE", "--env", "DIBVM_TEST_UNSET", "--env", "DIB_ROOT_LABEL", "--env", "X=1"}
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	o, closeLog, err := c.options(cmd.Flags(), []string{"vm"})
	if err != nil {
		t.Fatal(err)
	}
	closeLog()
	want := []string{"DIBVM_TEST_FROM_HERE=here", "DIBVM_TEST_UNSET", "DIB_ROOT_LABEL=flag", "X=1"}
	if !slices.Equal(o.ExplicitEnv, want) {
		t.Errorf("--env resolved to %q, want %q", o.ExplicitEnv, want)
	}
	_, _, err = hookenv.Filter(o.Environ, o.ExplicitEnv, o.NoHostEnv)
	if want := "--env DIBVM_TEST_UNSET: DIBVM_TEST_UNSET is not set here; give its value as --env DIBVM_TEST_UNSET=VALUE"; err == nil || err.Error() != want {
		t.Errorf("an unset --env NAME: %v, want %q", err, want)
	}
}

// --host-path names variables, comma-separated and repeatable; where it
// is not given, DIBVM_HOST_PATH does; each resolves as --env does, from
// the build's environment, else dibvm's own.
func TestHostPathVars(t *testing.T) {
	t.Setenv("DIBVM_HOST_PATH", "FROM_ENV, ALSO")
	c := &createFlags{}
	if got := c.hostPathVars(); !slices.Equal(got, []string{"FROM_ENV", "ALSO"}) {
		t.Errorf("from DIBVM_HOST_PATH: %q", got)
	}
	c.hostPaths = []string{"A,B", "C"}
	if got := c.hostPathVars(); !slices.Equal(got, []string{"A", "B", "C"}) {
		t.Errorf("from --host-path: %q", got)
	}
	t.Setenv("C", "/dibvm's/own")
	o := &plan.Options{Environ: []string{"A=./a.conf"}}
	resolveEnv(o, c.hostPathVars())
	if !slices.Equal(o.HostPaths, []string{"A=./a.conf", "B", "C=/dibvm's/own"}) {
		t.Errorf("resolved %q", o.HostPaths)
	}
}
