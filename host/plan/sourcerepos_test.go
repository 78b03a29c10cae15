package plan

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/guestagent/api"
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

// A DIB_REPOLOCATION_ that names a checkout on this machine lends the
// build a git bundle of the ref the build asks for; the file names the
// variable, and the host path goes along for the manifest.
func TestSourceReposLendsALocalCheckout(t *testing.T) {
	dir := gitCheckout(t)
	els := repoElements(map[string]string{"source-repository-my-app": "my-app git /opt/app https://example.org/app.git main\n"})
	spec := &api.Spec{Elements: []string{"app", "source-repositories"}, Env: map[string]string{"DIB_REPOLOCATION_my_app": dir}}
	files, err := sourceRepos(els, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || spec.HostFiles["DIB_REPOLOCATION_my_app"] != files[0].Name || spec.Env["DIBVM_HOST_REPOLOCATION_my_app"] != dir {
		t.Fatalf("files %v, host files %v, env %v", len(files), spec.HostFiles, spec.Env)
	}
	bundle := filepath.Join(t.TempDir(), "b")
	os.WriteFile(bundle, files[0].Data, 0o600)
	heads, err := exec.Command("git", "bundle", "list-heads", bundle).Output()
	if err != nil || !bytes.Contains(heads, []byte("refs/heads/main")) || !bytes.Contains(heads, []byte("HEAD")) {
		t.Errorf("the bundle's heads: %s %v", heads, err)
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
		spec := &api.Spec{Elements: []string{"app", "source-repositories"}, Env: map[string]string{}}
		for k, v := range c.env {
			spec.Env[k] = v
		}
		_, err := sourceRepos(repoElements(c.files), spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.name, err, c.want)
		}
	}
	// Without the source-repositories element, DIB reads no such file.
	spec := &api.Spec{Elements: []string{"app"}, Env: map[string]string{}}
	if _, err := sourceRepos(repoElements(map[string]string{"source-repository-x": "x svn\n"}), spec); err != nil {
		t.Errorf("without source-repositories: %v", err)
	}
}
