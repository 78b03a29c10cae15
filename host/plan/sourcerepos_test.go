package plan

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/dibvm/dibvm/elements"
)

// gitCheckout makes a checkout with two commits on main and returns its
// directory.
func gitCheckout(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "one"},
		{"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "two"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

func repoElements(files map[string]string) []*elements.Element {
	fsys := fstest.MapFS{}
	for k, v := range files {
		fsys[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return []*elements.Element{{Name: "app", FS: fsys}}
}

// sourcePlan is a plan of the element app and source-repositories.
func sourcePlan(env map[string]string) *Plan {
	p := lendPlan(env)
	p.Spec.Elements = []string{"app", "source-repositories"}
	return p
}

// A DIB_REPOLOCATION_ that names a checkout on this machine lends the
// build a git bundle of the ref the build asks for, and nothing else of
// the checkout; the host path goes along for the manifest.
func TestSourceReposLendsALocalCheckout(t *testing.T) {
	dir := gitCheckout(t)
	os.WriteFile(filepath.Join(dir, "untracked"), []byte("not for the build"), 0o600)
	els := repoElements(map[string]string{"source-repository-my-app": "my-app git /opt/app https://example.org/app.git main\n"})
	p := sourcePlan(map[string]string{"DIB_REPOLOCATION_my_app": dir})
	if err := p.lendSources(els); err != nil {
		t.Fatal(err)
	}
	files := p.packLoans()
	if len(files) != 1 || !strings.HasSuffix(p.Spec.Env["DIB_REPOLOCATION_my_app"], "/my-app.bundle") || p.Spec.Env["DIBVM_HOST_REPOLOCATION_my_app"] != dir {
		t.Fatalf("files %d, env %v", len(files), p.Spec.Env)
	}
	tr := tar.NewReader(bytes.NewReader(files[0].Data))
	var names []string
	var bundle []byte
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
		if strings.HasSuffix(h.Name, ".bundle") {
			bundle, _ = io.ReadAll(tr)
		}
	}
	if bundle == nil || slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, "untracked") }) {
		t.Fatalf("the loan holds %v", names)
	}
	path := filepath.Join(t.TempDir(), "b")
	os.WriteFile(path, bundle, 0o600)
	heads, err := exec.Command("git", "bundle", "list-heads", path).Output()
	if err != nil || !bytes.Contains(heads, []byte("refs/heads/main")) || !bytes.Contains(heads, []byte("HEAD")) {
		t.Errorf("the bundle's heads: %s %v", heads, err)
	}
	if tmp, _ := filepath.Glob(filepath.Join(os.TempDir(), "dibvm-bundle-*")); len(tmp) > 0 {
		t.Errorf("left behind: %v", tmp)
	}
}

// Bad settings and lines fail before the VM boots, naming what to fix.
func TestSourceReposRefuses(t *testing.T) {
	dir := gitCheckout(t)
	line := map[string]string{"source-repository-my-app": "my-app git /opt/app https://example.org/app.git\n"}
	for _, c := range []struct {
		name  string
		files map[string]string
		env   map[string]string
		want  string
	}{
		{"missing path", line, map[string]string{"DIB_REPOLOCATION_my_app": "/nonexistent/checkout"},
			"DIB_REPOLOCATION_my_app=/nonexistent/checkout (source repository my-app of element app, source-repository-my-app line 1): no such file or directory here"},
		{"missing ref", line, map[string]string{"DIB_REPOLOCATION_my_app": dir},
			"the checkout has no commit master (set DIB_REPOREF_"},
		{"not a checkout", line, map[string]string{"DIB_REPOLOCATION_my_app": t.TempDir()}, "a directory that is no git checkout"},
		{"unknown type", map[string]string{"source-repository-x": "x svn /opt/x http://x\n"}, nil,
			`element app: source-repository-x line 1: unknown type "svn"`},
		{"unknown type override", line, map[string]string{"DIB_REPOTYPE_my_app": "hg"}, "DIB_REPOTYPE_my_app=hg"},
		{"no parse", map[string]string{"source-repository-x": "x git /a b c d\n"}, nil, "element app: source-repository-x line 1:"},
		{"one place twice", map[string]string{"source-repository-x": "x git /a http://x\ny tar /a http://y .\n"}, nil,
			"y goes to /a, where x of element app (source-repository-x line 1) goes too"},
	} {
		env := map[string]string{}
		for k, v := range c.env {
			env[k] = v
		}
		err := sourcePlan(env).lendSources(repoElements(c.files))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.name, err, c.want)
		}
	}
	// Without the source-repositories element, DIB reads no such file.
	p := lendPlan(map[string]string{})
	p.Spec.Elements = []string{"app"}
	if err := p.lendSources(repoElements(map[string]string{"source-repository-x": "x svn\n"})); err != nil {
		t.Errorf("without source-repositories: %v", err)
	}
}
