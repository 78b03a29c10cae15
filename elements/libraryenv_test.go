package elements

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// builtinEnv sources, as DIB does before every phase, the environment.d
// files of the built-in elements args expand to, with only the caller's
// variables given, and returns the variables named in want. These files
// only assign variables, so running them on the host is safe, unlike
// hooks; they run with an empty environment all the same.
func builtinEnv(t *testing.T, args []string, caller map[string]string, names []string) map[string]string {
	t.Helper()
	lib, err := NewLibrary("", Builtin())
	if err != nil {
		t.Fatal(err)
	}
	els, err := Expand(lib, args)
	if err != nil {
		t.Fatal(err)
	}
	h, err := MergeHooks(els)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := h.Environment()
	dir := t.TempDir()
	script := "set -eu\n"
	for i, f := range files {
		data, err := fs.ReadFile(f.Element.FS, f.File())
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("%03d-%s", i, filepath.Base(f.Path)))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		script += ". " + p + "\n"
	}
	for _, n := range names {
		script += "printf '%s=%s\\0' " + n + " \"${" + n + "-<unset>}\"\n"
	}
	// What the build itself sets for every hook.
	env := []string{"PATH=/usr/bin:/bin", "IMAGE_NAME=image", "TMP_HOOKS_PATH=" + dir, "TARGET_ROOT=" + dir, "ARCH=amd64"}
	for k, v := range caller {
		env = append(env, k+"="+v)
	}
	cmd := exec.Command("bash", "--noprofile", "--norc", "-c", script)
	cmd.Env = env
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sourcing the environment.d files of %v: %v\n%s", args, err, stderr.String())
	}
	got := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	return got
}

// The environment.d defaults of debian-minimal, ubuntu-common and
// ubuntu-minimal give DIB master's values: release, mirror, components,
// kernel, and the apt sources with updates and security; but for the
// security archive, DIB's http://security.debian.org/ has no dists/, and
// dibvm's default is http://security.debian.org/debian-security.
func TestBuiltinEnvironment(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("the environment.d files are bash: install bash")
	}
	debianSources := func(mirror, release, security, components string) string {
		return "default:deb " + mirror + " " + release + " " + components + "\n" +
			"updates:deb " + mirror + " " + release + "-updates " + components + "\n" +
			"security:deb " + security + " " + release + "-security " + components + "\n"
	}
	for _, c := range []struct {
		name   string
		args   []string
		caller map[string]string
		want   map[string]string
	}{
		{"debian defaults", []string{"debian-minimal"}, map[string]string{"ARCH": "amd64"}, map[string]string{
			"DISTRO_NAME": "debian", "DIB_RELEASE": "stable", "DIB_INIT_SYSTEM": "systemd",
			"DIB_DISTRIBUTION_MIRROR": "http://deb.debian.org/debian", "DIB_DEBIAN_COMPONENTS": "main",
			"DIB_APT_SOURCES_CONF": debianSources("http://deb.debian.org/debian", "stable", "http://security.debian.org/debian-security", "main"),
		}},
		{"debian release, mirrors and components", []string{"debian"}, map[string]string{
			"DIB_RELEASE": "trixie", "DIB_DEBIAN_DISTRIBUTION_MIRROR": "http://mirror.example/debian",
			"DIB_DEBIAN_SECURITY_MIRROR": "http://sec.example/debian-security", "DIB_DEBIAN_COMPONENTS": "main,contrib,non-free-firmware",
		}, map[string]string{
			"DIB_DISTRIBUTION_MIRROR": "http://mirror.example/debian",
			"DIB_APT_SOURCES_CONF":    debianSources("http://mirror.example/debian", "trixie", "http://sec.example/debian-security", "main contrib non-free-firmware"),
		}},
		{"debian testing has no updates or security", []string{"debian-minimal"}, map[string]string{"DIB_RELEASE": "testing"}, map[string]string{
			"DIB_APT_SOURCES_CONF": "default:deb http://deb.debian.org/debian testing main",
		}},
		{"debian sources given", []string{"debian-minimal"}, map[string]string{"DIB_APT_SOURCES_CONF": "mine:deb http://m.example/debian trixie main"}, map[string]string{
			"DIB_APT_SOURCES_CONF": "mine:deb http://m.example/debian trixie main",
		}},
		{"ubuntu-minimal defaults", []string{"ubuntu-minimal"}, map[string]string{"ARCH": "amd64"}, map[string]string{
			"DISTRO_NAME": "ubuntu", "DIB_RELEASE": "noble", "DIB_INIT_SYSTEM": "systemd", "EFI_BOOT_DIR": "EFI/ubuntu",
			"DIB_DISTRIBUTION_MIRROR": "http://archive.ubuntu.com/ubuntu", "DIB_DEBIAN_COMPONENTS": "main,universe",
			"DIB_UBUNTU_KERNEL": "linux-image-generic", "DIB_UBUNTU_MIRROR_DISTS": "updates,security,backports",
		}},
		{"ubuntu ports", []string{"ubuntu-minimal"}, map[string]string{"ARCH": "arm64", "DIB_UBUNTU_KERNEL": "linux-image-virtual"}, map[string]string{
			"DIB_DISTRIBUTION_MIRROR": "http://ports.ubuntu.com/ubuntu-ports", "DIB_UBUNTU_KERNEL": "linux-image-virtual",
		}},
		{"ubuntu trusty is upstart", []string{"ubuntu-minimal"}, map[string]string{"ARCH": "amd64", "DIB_RELEASE": "trusty"}, map[string]string{
			"DIB_INIT_SYSTEM": "upstart",
		}},
		{"ubuntu cloud image", []string{"ubuntu"}, map[string]string{"ARCH": "amd64"}, map[string]string{
			"DISTRO_NAME": "ubuntu", "DIB_RELEASE": "noble", "DIB_CLOUD_INIT_DATASOURCES": "Ec2", "DIB_LOCAL_IMAGE": "",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var names []string
			for k := range c.want {
				names = append(names, k)
			}
			got := builtinEnv(t, c.args, c.caller, names)
			for k, v := range c.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}
