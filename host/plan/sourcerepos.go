package plan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"slices"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/sourcerepos"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/iso"
)

// The source-repositories element fetches what the elements'
// source-repository-* files name, in the guest. The host reads the files
// first, so that a line that does not parse or names an unknown type
// fails before the VM boots, and lends the build what a
// DIB_REPOLOCATION_<name> names on this machine (a local checkout, the
// way CI systems build from the change under test): DIB's hook would
// read it on DIB's host, which the guest is not.

// maxLocalSource bounds what one local location carries on the input
// disk, which is made in memory.
const maxLocalSource = 256 << 20

// hostLocationEnv names, for the guest, the host path a lent location
// had, which the git manifest records instead of the copy's.
const hostLocationEnv = "DIBVM_HOST_REPOLOCATION_"

// sourceRepos checks the source-repository files of els when the build
// has the source-repositories element, and returns the input-disk files
// of the local locations the settings name, with spec.HostFiles saying
// which variable each is for.
func sourceRepos(els []*elements.Element, spec *api.Spec) ([]iso.File, error) {
	if !slices.Contains(spec.Elements, "source-repositories") {
		return nil, nil
	}
	lookup := func(k string) (string, bool) { v, ok := spec.Env[k]; return v, ok }
	var files []iso.File
	dests := map[string]sourcerepos.Repo{}
	for _, e := range els {
		repos, err := sourcerepos.Read(e.Name, e.FS)
		if err != nil {
			return nil, err
		}
		for _, r := range repos {
			if r, err = r.Override(lookup); err != nil {
				return nil, err
			}
			if prev, ok := dests[r.Destination]; ok && r.Destination != "" && !r.Expanded {
				return nil, fmt.Errorf("element %s: %s line %d: %s goes to %s, where %s of element %s (%s line %d) goes too: DIB refuses two sources in one place",
					r.Element, r.File, r.Line, r.Name, r.Destination, prev.Name, prev.Element, prev.File, prev.Line)
			}
			dests[r.Destination] = r
			f, err := localSource(r, spec, len(files))
			if err != nil {
				return nil, err
			}
			if f != nil {
				files = append(files, *f)
			}
		}
	}
	return files, nil
}

// localSource reads what r's DIB_REPOLOCATION_ setting names on this
// machine, if it names a path here, as input-disk file number i.
func localSource(r sourcerepos.Repo, spec *api.Spec, i int) (*iso.File, error) {
	k := sourcerepos.Var("DIB_REPOLOCATION_", r.Name)
	v := spec.Env[k]
	host, ok := sourcerepos.LocalPath(v)
	if r.Name == "" || !ok || r.Type == "package" {
		return nil, nil
	}
	data, err := readLocalSource(r, host)
	if err != nil {
		return nil, fmt.Errorf("%s=%s (source repository %s of element %s, %s line %d): %w", k, v, r.Name, r.Element, r.File, r.Line, err)
	}
	name := fmt.Sprintf("srcr%d", i)
	if spec.HostFiles == nil {
		spec.HostFiles = map[string]string{}
	}
	spec.HostFiles[k] = name
	spec.Env[hostLocationEnv+k[len("DIB_REPOLOCATION_"):]] = v
	return &iso.File{Name: name, Data: data}, nil
}

// readLocalSource is what the build gets of the host's path: a git
// checkout as a bundle of the ref r asks for, a file as it is.
func readLocalSource(r sourcerepos.Repo, path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("no such file or directory here: it names a path on this machine, which dibvm lends the build read-only")
	}
	if err != nil {
		return nil, err
	}
	switch {
	case fi.Mode().IsRegular():
		return readBounded(path)
	case fi.IsDir() && r.Type == "git":
		return gitBundle(path, r.Ref)
	case fi.IsDir():
		return nil, fmt.Errorf("a directory, where a %s source is a file", r.Type)
	}
	return nil, errors.New("neither a regular file nor a git checkout")
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLocalSource+1))
	if err == nil && len(data) > maxLocalSource {
		err = fmt.Errorf("larger than the %d MiB dibvm carries", maxLocalSource>>20)
	}
	return data, err
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
	data, rerr := io.ReadAll(io.LimitReader(out, maxLocalSource+1))
	if len(data) > maxLocalSource {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("its bundle of %s comes to more than the %d MiB dibvm carries", ref, maxLocalSource>>20)
	}
	if err := cmd.Wait(); err != nil || rerr != nil {
		return nil, fmt.Errorf("git bundle create: %v %s", errors.Join(err, rerr), bytes.TrimSpace(stderr.Bytes()))
	}
	return data, nil
}
