package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/host/hookenv"
	"github.com/dibvm/dibvm/host/imagediff"
	"github.com/dibvm/dibvm/host/plan"
	"github.com/dibvm/dibvm/host/provenance"
	"github.com/dibvm/dibvm/host/sha256sum"
	"github.com/dibvm/dibvm/host/sshsign"
	"github.com/dibvm/dibvm/host/termsafe"
)

// rebuildFlags are rebuild's own flags, and the flags of create that
// are dibvm's own and the helper VM's.
type rebuildFlags struct {
	dir, trust string
	shared     createFlags
}

func rebuildCommand() *cobra.Command {
	r := &rebuildFlags{}
	cmd := &cobra.Command{
		Use:   "rebuild -o DIR [flags] STATEMENT",
		Short: "Build an image again from its provenance statement, and compare",
		Long: `Build again what the provenance statement STATEMENT (IMAGE.provenance.json)
describes, into DIR, and say whether each output is the same bytes, and
where one is not, which files in it differ: diffoscope's report where it is
installed, else dibvm's own list by path (tar entries, and the files of a
disk image's ext2/3/4 partitions).

The build gets the statement's elements, output types, architecture, image
name, settings, SOURCE_DATE_EPOCH and seed, and replays the lock file beside
the statement (--packages-from). Before the VM boots, the elements found on
ELEMENTS_PATH must be the statement's, file for file, and the settings
withheld from it as secret-shaped must be set in the environment. With
--trust, the statement must be signed by a key FILE lists. Exit status 1
means an output differs.`,
		Example: `  ELEMENTS_PATH=./elements dibvm rebuild -o again web.provenance.json`,
		Args:    exactlyOne("the STATEMENT to rebuild"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.run(cmd.OutOrStdout(), args[0])
		},
	}
	f := cmd.Flags()
	f.StringVarP(&r.dir, "output-dir", "o", "", "the directory to build into (not the statement's own)")
	f.StringVar(&r.trust, "trust", "", "rebuild only a statement signed by a key this file lists (allowed_signers or authorized_keys lines)")
	g := r.shared.register(&cobra.Command{})
	f.AddFlagSet(g.vm)
	return cmd
}

// rebuild is a statement read back: what it asks to build, and with
// what.
type rebuild struct {
	statement string
	st        *provenance.Statement
	lock      string // the lock file beside it, "" for none
}

func (r *rebuildFlags) run(out io.Writer, statement string) error {
	rb, err := r.read(out, statement)
	if err != nil {
		return err
	}
	c := &createFlags{}
	cmd := &cobra.Command{}
	c.register(cmd)
	c.share(&r.shared)
	f := cmd.Flags()
	args, env, err := rb.command(filepath.Join(r.dir, rb.st.Predicate.BuildDefinition.ExternalParameters.ImageName), os.Environ())
	if err != nil {
		return err
	}
	if err := f.Parse(args); err != nil {
		return fmt.Errorf("the statement's command line %q: %w", args, err)
	}
	c.imageEnv = func([]string) []string { return env }
	o, err := c.check(f, f.Args())
	if err != nil {
		return err
	}
	o.Expect = rb.sameElements
	closeLog, err := c.output(&o)
	if err != nil {
		return err
	}
	defer closeLog()
	fmt.Fprintf(out, "dibvm: rebuilding %s: dibvm create %s\n", termsafe.String(statement), termsafe.String(strings.Join(args, " ")))
	if err := runBuild(&c.vf, o, c.timeout, c.summary); err != nil {
		return err
	}
	return rb.compare(out, r.dir)
}

// read reads the statement, checks its signature where keys are
// trusted, and refuses what it cannot rebuild, before anything starts.
func (r *rebuildFlags) read(out io.Writer, statement string) (*rebuild, error) {
	if r.dir == "" {
		return nil, usagef("-o DIR: give the directory to build into")
	}
	st, err := provenance.Read(statement)
	if err != nil {
		return nil, err
	}
	if d, _ := filepath.Abs(r.dir); d == absDir(statement) {
		return nil, usagef("-o %s: the statement's own directory; give another, where the outputs are built again to compare", r.dir)
	}
	if r.trust != "" {
		trusted, err := sshsign.LoadTrusted(r.trust)
		if err != nil {
			return nil, usagef("--trust %s: %v", r.trust, err)
		}
		if !checkSignature(out, statement, trusted) {
			return nil, exitCode(1)
		}
	}
	if err := checkNames(st); err != nil {
		return nil, fmt.Errorf("%s: %w", statement, err)
	}
	rb := &rebuild{statement: statement, st: st}
	var lent []string
	for _, d := range st.Predicate.BuildDefinition.ResolvedDependencies {
		switch {
		case strings.HasPrefix(d.Name, "host file:"):
			lent = append(lent, strings.TrimPrefix(d.Name, "host file:"))
		case d.Name == "lock file":
			lock := filepath.Join(filepath.Dir(statement), filepath.Base(d.URI))
			sum, _, err := sha256sum.File(lock)
			if err != nil {
				return nil, fmt.Errorf("%s: the lock file the statement names: %w; the packages cannot be had again without it", statement, err)
			}
			if sum != d.Digest["sha256"] {
				return nil, fmt.Errorf("%s: the lock file %s has changed since the build (sha256 %s, the statement says %s)", statement, lock, sum, d.Digest["sha256"])
			}
			rb.lock = lock
		}
	}
	if len(lent) > 0 {
		return nil, fmt.Errorf("%s: the build borrowed host files (%s), which rebuild does not lend: build again with dibvm create --host-path", statement, strings.Join(lent, ", "))
	}
	return rb, nil
}

// checkNames refuses a statement whose names would reach outside the
// directory built into, or read as flags: the statement may be anyone's.
func checkNames(st *provenance.Statement) error {
	p := st.Predicate.BuildDefinition.ExternalParameters
	local := func(name string) bool {
		return filepath.IsLocal(name) && !strings.ContainsAny(name, `/\`) && !strings.HasPrefix(name, "-")
	}
	if !local(p.ImageName) {
		return fmt.Errorf("image name %q: not a file name", p.ImageName)
	}
	for _, s := range st.Subject {
		if !local(s.Name) {
			return fmt.Errorf("output %q: not a file name", s.Name)
		}
	}
	for _, e := range p.Elements {
		if !elementName.MatchString(e) {
			return fmt.Errorf("element %q: not an element's name", e)
		}
	}
	for _, t := range p.Types {
		if !elementName.MatchString(t) {
			return fmt.Errorf("output type %q: not a type", t)
		}
	}
	if !elementName.MatchString(p.Arch) {
		return fmt.Errorf("architecture %q: not an architecture", p.Arch)
	}
	return nil
}

// elementName is what the statement's element names, types and
// architecture may be: no flag, no path.
var elementName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]*$`)

func absDir(path string) string {
	d, _ := filepath.Abs(filepath.Dir(path))
	return d
}

// command is the create command line that builds the statement again
// into output, and its environment: the caller's, less every setting
// the hooks would see, with the statement's settings in their place
// (a withheld one's value from the caller's).
func (rb *rebuild) command(output string, caller []string) (args, env []string, err error) {
	p := rb.st.Predicate.BuildDefinition.ExternalParameters
	args = []string{"-o", output, "-t", strings.Join(p.Types, ","), "-a", p.Arch, "-n", "--no-host-env", "--progress", "plain"}
	if p.Seed != "" {
		args = append(args, "--seed", p.Seed)
	}
	if rb.lock != "" {
		args = append(args, "--packages-from", rb.lock)
	}
	if len(p.Packages) > 0 {
		args = append(args, "-p", strings.Join(p.Packages, ","))
	}
	for _, fl := range []struct {
		name, value string
	}{
		{"--image-size", fmtFloat(p.ImageSizeGB)}, {"--image-extra-size", fmtFloat(p.ExtraSizeGB)},
		{"--root-label", p.RootLabel}, {"--mkfs-journal-size", fmtInt(int64(p.JournalMiB))},
		{"--mkfs-options", p.MkfsOptions}, {"--max-online-resize", fmtInt(p.MaxOnlineResize)},
		{"--qemu-img-options", p.QemuImgOptions}, {"--docker-target", p.DockerTarget},
	} {
		if fl.value != "" {
			args = append(args, fl.name, fl.value)
		}
	}
	if p.Uncompressed {
		args = append(args, "-u")
	}
	// Of the caller's environment, only what no hook sees and no
	// setting of the build reads: the rest is the statement's.
	visible, _, _ := hookenv.Filter(caller, nil, true)
	for _, kv := range caller {
		k, _, _ := strings.Cut(kv, "=")
		_, seen := visible[k]
		_, stated := p.Env[k]
		if hostSide[k] || (!seen && !stated && !buildSettings[k]) {
			env = append(env, kv)
		}
	}
	if p.RootFSType != "" && p.Env["FS_TYPE"] == "" {
		env = append(env, "FS_TYPE="+p.RootFSType)
	}
	var missing []string
	for _, k := range slices.Sorted(maps.Keys(p.Env)) {
		v := p.Env[k]
		if hostSide[k] {
			continue // the builder's host's, not the build's: the caller's own
		}
		if v == provenance.Withheld {
			var ok bool
			if v, ok = lookupEnv(caller, k); !ok {
				missing = append(missing, k)
				continue
			}
		}
		env = append(env, k+"="+v)
		args = append(args, "--env", k)
	}
	if len(missing) > 0 {
		return nil, nil, usagef("%s: the build's settings %s were withheld from the statement as secret-shaped: set them in the environment", rb.statement, strings.Join(missing, ", "))
	}
	if p.SourceDateEpoch != nil {
		env = append(env, "SOURCE_DATE_EPOCH="+strconv.FormatInt(*p.SourceDateEpoch, 10))
	}
	return append(append(args, "--"), p.Elements...), env, nil
}

// hostSide are settings the hooks see that name a place on the host
// that built, where the rebuild has its own: the caller's.
var hostSide = map[string]bool{"DIB_IMAGE_CACHE": true}

// buildSettings are the variables besides DIB_* that create reads as
// the build's settings (see environFlags): the statement's, or none.
var buildSettings = func() map[string]bool {
	m := map[string]bool{"FS_TYPE": true, "SOURCE_DATE_EPOCH": true, "break": true}
	for _, ef := range environFlags {
		m[ef.variable] = true
	}
	return m
}()

func fmtFloat(f float64) string {
	if f == 0 {
		return ""
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func fmtInt(n int64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

func lookupEnv(env []string, name string) (string, bool) {
	for _, kv := range slices.Backward(env) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// sameElements refuses, before the VM boots, a plan whose elements are
// not the statement's, naming each that differs.
func (rb *rebuild) sameElements(p *plan.Plan) error {
	b, err := p.Provenance()
	if err != nil {
		return err
	}
	now, err := provenance.Make(b, nil)
	if err != nil {
		return err
	}
	digests := func(st *provenance.Statement) map[string]string {
		m := map[string]string{}
		for _, d := range st.Predicate.BuildDefinition.ResolvedDependencies {
			if name, ok := strings.CutPrefix(d.Name, "element:"); ok {
				m[name] = d.Digest["sha256"]
			}
		}
		return m
	}
	was, is := digests(rb.st), digests(now)
	var differ []string
	for _, name := range slices.Sorted(maps.Keys(was)) {
		switch {
		case is[name] == "":
			differ = append(differ, name+" (not found)")
		case is[name] != was[name]:
			differ = append(differ, name+" (its files differ)")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(is)) {
		if was[name] == "" {
			differ = append(differ, name+" (not in the statement)")
		}
	}
	if len(differ) > 0 {
		return fmt.Errorf("%s: the elements are not the ones the statement names: %s; point ELEMENTS_PATH at the elements it was built from", rb.statement, strings.Join(differ, ", "))
	}
	return nil
}

// compare checks each file the statement names against the one built
// again into dir, and says where those that differ do.
func (rb *rebuild) compare(out io.Writer, dir string) error {
	differ := 0
	for _, s := range rb.st.Subject {
		again := filepath.Join(dir, s.Name)
		sum, _, err := sha256sum.File(again)
		switch {
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(out, "%s: not built again\n", termsafe.String(s.Name))
			differ++
			continue
		case err != nil:
			return err
		case sum == s.Digest["sha256"]:
			fmt.Fprintf(out, "%s: the same (sha256 %s)\n", termsafe.String(s.Name), sum)
			continue
		}
		differ++
		fmt.Fprintf(out, "%s: DIFFERS: sha256 %s, the statement says %s\n", termsafe.String(s.Name), sum, termsafe.String(s.Digest["sha256"]))
		rb.explain(out, s.Name, again)
	}
	if differ > 0 {
		if in := rb.st.Predicate.BuildDefinition.InternalParameters; in != nil {
			for _, n := range in.NotReproducible {
				fmt.Fprintf(out, "not reproducible, as the build said: %s\n", termsafe.String(n))
			}
		}
		fmt.Fprintf(out, "%d of %d files differ from the statement\n", differ, len(rb.st.Subject))
		return exitCode(1)
	}
	fmt.Fprintf(out, "OK: all %d files are the same bytes as the statement says\n", len(rb.st.Subject))
	return nil
}

// maxListed bounds the paths listed of one output.
const maxListed = 50

// explain says where the file built again differs from the original,
// where the original is still beside the statement.
func (rb *rebuild) explain(out io.Writer, name, again string) {
	orig := filepath.Join(filepath.Dir(rb.statement), name)
	if _, err := os.Stat(orig); err != nil {
		fmt.Fprintf(out, "  (the original is not beside the statement, to compare)\n")
		return
	}
	if diffoscope, err := exec.LookPath("diffoscope"); err == nil {
		cmd := exec.Command(diffoscope, "--text", "-", orig, again)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.Run() // exits 1 where the files differ
		return
	}
	typ := strings.TrimPrefix(name, rb.st.Predicate.BuildDefinition.ExternalParameters.ImageName+".")
	diffs, err := imagediff.Compare(context.Background(), typ, orig, again, filepath.Dir(again))
	if err != nil {
		fmt.Fprintf(out, "  (cannot list where: %s)\n", termsafe.String(err.Error()))
		return
	}
	if len(diffs) > 0 {
		fmt.Fprintf(out, "  where (the first is the original, the second the one built again):\n")
	}
	for i, d := range diffs {
		if i == maxListed {
			fmt.Fprintf(out, "  ... and %d more\n", len(diffs)-maxListed)
			break
		}
		fmt.Fprintf(out, "    %s\n", termsafe.String(d.String()))
	}
}
