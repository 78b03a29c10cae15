package plan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/sourcerepos"
	"github.com/dibvm/dibvm/host/hostpath"
)

// The source-repositories element fetches what the elements'
// source-repository-* files name, in the guest. The host reads the files
// first, so that a line that does not parse or names an unknown type
// fails before the VM boots, and lends the build what a
// DIB_REPOLOCATION_<name> names on this machine (a local checkout, the
// way CI systems build from the change under test): DIB's hook would
// read it on DIB's host, which the guest is not. Of a checkout, only a
// bundle of the ref the build asks for crosses, not its working tree.

// maxBundle bounds a checkout's bundle, which the input disk, made in
// memory, carries (within the Lender's limits for all loans).
const maxBundle = 256 << 20

// hostLocationEnv names, for the guest, the host path a lent location
// had, which the git manifest records instead of the copy's.
const hostLocationEnv = "DIBVM_HOST_REPOLOCATION_"

// lendSources checks the source-repository files of els when the build
// has the source-repositories element, and lends the build what each
// DIB_REPOLOCATION_<name> names on this machine (see host/hostpath).
func (p *Plan) lendSources(els []*elements.Element) error {
	if !slices.Contains(p.Spec.Elements, "source-repositories") {
		return nil
	}
	lookup := func(k string) (string, bool) { v, ok := p.Spec.Env[k]; return v, ok }
	dests := map[string]sourcerepos.Repo{}
	for _, e := range els {
		repos, err := sourcerepos.Read(e.Name, e.FS)
		if err != nil {
			return err
		}
		for _, r := range repos {
			if r, err = r.Override(lookup); err != nil {
				return err
			}
			if prev, ok := dests[r.Destination]; ok && r.Destination != "" && !r.Expanded {
				return fmt.Errorf("element %s: %s line %d: %s goes to %s, where %s of element %s (%s line %d) goes too: DIB refuses two sources in one place",
					r.Element, r.File, r.Line, r.Name, r.Destination, prev.Name, prev.Element, prev.File, prev.Line)
			}
			dests[r.Destination] = r
			if err := p.lendSource(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// lendSource lends what r's DIB_REPOLOCATION_ setting names on this
// machine, if it names a path here: a git checkout as a bundle of the ref
// r asks for, a file as it is.
func (p *Plan) lendSource(r sourcerepos.Repo) error {
	k := sourcerepos.Var("DIB_REPOLOCATION_", r.Name)
	v := p.Spec.Env[k]
	host, ok := sourcerepos.LocalPath(v)
	lent := slices.ContainsFunc(p.Lender.Loans(), func(l *hostpath.Loan) bool { return l.Var == k })
	if r.Name == "" || !ok || r.Type == "package" || lent {
		return nil
	}
	why := fmt.Sprintf("source repository %s of element %s, %s line %d", r.Name, r.Element, r.File, r.Line)
	fi, err := os.Stat(host)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s=%s (%s): no such file or directory here: it names a path on this machine, which dibvm lends the build read-only", k, v, why)
	case err != nil:
		return fmt.Errorf("%s=%s (%s): %w", k, v, why, err)
	case fi.IsDir() && r.Type == "git":
		err = p.lendBundle(k, host, r, why)
	case fi.IsDir():
		err = fmt.Errorf("%s=%s (%s): a directory, where a %s source is a file", k, v, why, r.Type)
	default:
		_, err = p.Lender.Lend(k, []string{host}, hostpath.File, why)
	}
	if err == nil {
		p.Spec.Env[hostLocationEnv+k[len("DIB_REPOLOCATION_"):]] = v
	}
	return err
}

// lendBundle lends variable k a git bundle of the checkout dir, made in
// a temporary directory that is gone when it returns.
func (p *Plan) lendBundle(k, dir string, r sourcerepos.Repo, why string) error {
	data, err := gitBundle(dir, r.Ref)
	if err != nil {
		return fmt.Errorf("%s=%s (%s): %w", k, dir, why, err)
	}
	tmp, err := os.MkdirTemp("", "dibvm-bundle-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	file := filepath.Join(tmp, r.Name+".bundle")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return err
	}
	_, err = p.Lender.Lend(k, []string{file}, hostpath.File, why)
	return err
}

// commitID is what DIB takes for a SHA1 ref: one git cannot fetch by
// name, for which it fetches every head and tag.
var commitID = regexp.MustCompile(`^[0-9a-f]{7,64}$`)

// gitBundle bundles of the checkout at dir what a clone of ref needs:
// the ref and HEAD, or every branch and tag for "*" or a commit ID. The
// checkout is the caller's own, read and never written, by the host's
// git.
func gitBundle(dir, ref string) ([]byte, error) {
	if ref == "" {
		ref = "master" // DIB's default for git
	}
	// One thread packs the same checkout into the same bytes, so that an
	// unchanged checkout keeps the build's checkpoints.
	git := func(args ...string) *exec.Cmd {
		return exec.Command("git", append([]string{"-C", dir, "-c", "pack.threads=1"}, args...)...)
	}
	if _, err := exec.LookPath("git"); err != nil {
		return nil, errors.New("a git checkout, and this machine has no git to bundle it with: install git")
	}
	if err := git("rev-parse", "--git-dir").Run(); err != nil {
		return nil, errors.New("a directory that is no git checkout")
	}
	refs := []string{ref}
	if ref == "*" || commitID.MatchString(ref) {
		refs = []string{"--branches", "--tags"}
	}
	if ref != "*" {
		if err := git("rev-parse", "--verify", "--quiet", ref+"^{commit}").Run(); err != nil {
			return nil, fmt.Errorf("the checkout has no commit %s (set DIB_REPOREF_ to one it has)", ref)
		}
	}
	if git("rev-parse", "--verify", "--quiet", "HEAD").Run() == nil && ref != "HEAD" {
		refs = append(refs, "HEAD")
	}
	cmd := git(append([]string{"bundle", "create", "--quiet", "-"}, refs...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	data, rerr := io.ReadAll(io.LimitReader(out, maxBundle+1))
	if len(data) > maxBundle {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("its bundle of %s comes to more than the %d MiB dibvm carries", ref, maxBundle>>20)
	}
	if err := cmd.Wait(); err != nil || rerr != nil {
		return nil, fmt.Errorf("git bundle create: %v %s", errors.Join(err, rerr), bytes.TrimSpace(stderr.Bytes()))
	}
	return data, nil
}
