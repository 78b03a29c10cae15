package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// execute runs the command line dibvm has under name, and returns its output.
func execute(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := command(name)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return out.String()
}

func TestCreateHelp(t *testing.T) {
	for _, name := range []string{"dibvm", "disk-image-create"} {
		args := []string{"--help"}
		usage := "disk-image-create [flags] ELEMENT..."
		if name == "dibvm" {
			args, usage = []string{"create", "--help"}, "dibvm create [flags] ELEMENT..."
		}
		help := execute(t, name, args...)
		for _, want := range []string{
			"Usage:\n  " + usage + "\n",
			"Examples:\n  disk-image-create -o ubuntu -t qcow2 vm ubuntu-minimal\n",
			"DIB's flags:\n", "Helper VM flags:\n", "dibvm's flags:\n",
			"Output types (-t):\n  qcow2, raw, vhd, vhdx, vmdk, tar, tgz, squashfs, docker\n",
			"before-PHASE, after-PHASE, after-error\n  PHASE: root, extra-data, pre-install,",
			"\n  ELEMENTS_PATH\n", "DIB_BLOCK_DEVICE_CONFIG", "DIBVM_ACCEL",
			"Built-in elements:\n  base block-device-efi",
		} {
			if !strings.Contains(help, want) {
				t.Errorf("%s %v lacks %q:\n%s", name, args, want, help)
			}
		}
		// Each group has its own flags.
		dib := help[strings.Index(help, "DIB's flags:"):strings.Index(help, "Helper VM flags:")]
		vm := help[strings.Index(help, "Helper VM flags:"):strings.Index(help, "dibvm's flags:")]
		if !strings.Contains(dib, "--image-size") || strings.Contains(dib, "--accel") || !strings.Contains(vm, "--accel") || strings.Contains(vm, "--progress") {
			t.Errorf("flags in the wrong group:\n%s", help)
		}
	}
}

// Each DIB tool dibvm answers to has its own usage line.
func TestToolUsage(t *testing.T) {
	for name, want := range map[string]string{
		"element-info": "Usage:\n  element-info [--env] [--check] ELEMENT...",
		"pkg-map":      "usage: pkg-map (--element",
		"dibvm":        "Usage:\n  dibvm [command]",
	} {
		if help := execute(t, name, "--help"); !strings.Contains(help, want) {
			t.Errorf("%s --help lacks %q:\n%s", name, want, help)
		}
	}
}

func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "my-element", "install.d"), 0o755)
	t.Setenv("ELEMENTS_PATH", dir)
	for _, tc := range []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"dibvm", []string{"create", "vm", "deb"}, []string{"debian\n", "debian-minimal\n", "debootstrap\n"}, []string{"vm\n"}},
		{"dibvm", []string{"create", "my"}, []string{"my-element\n"}, nil},
		{"disk-image-create", []string{"vm", ""}, []string{"my-element\n", "ubuntu-minimal\n"}, []string{"\nvm\n"}},
		{"dibvm", []string{"create", "-t", "qcow2,t"}, []string{"qcow2,tar\n", "qcow2,tgz\n"}, []string{"qcow2,qcow2"}},
		{"dibvm", []string{"create", "--accel", ""}, []string{"auto\n", "kvm\n", "hvf\n", "tcg\n"}, nil},
		{"dibvm", []string{"create", "--network", ""}, []string{"nat\n", "none\n"}, []string{"restricted"}},
		{"dibvm", []string{"boot", "--network", ""}, []string{"proxy\n", "nat\n", "restricted\n", "none\n"}, nil},
		{"dibvm", []string{"run", "--accel", "t"}, []string{"tcg\n"}, nil},
		{"dibvm", []string{"create", "--progress", ""}, []string{"auto\n", "plain\n", "json\n"}, nil},
		{"element-info", []string{"debian-m"}, []string{"debian-minimal\n"}, nil},
	} {
		out := execute(t, tc.name, append([]string{"__complete"}, tc.args...)...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s %v: no %q in:\n%s", tc.name, tc.args, w, out)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(out, w) {
				t.Errorf("%s %v: %q in:\n%s", tc.name, tc.args, w, out)
			}
		}
	}
}
