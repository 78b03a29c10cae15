package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/host/outputs"
	"github.com/dibvm/dibvm/host/provenance"
	"github.com/dibvm/dibvm/host/sshsign"
	"github.com/dibvm/dibvm/host/termsafe"
)

func verifyCommand() *cobra.Command {
	var trust string
	cmd := &cobra.Command{
		Use:   "verify IMAGE",
		Short: "Check an image against the provenance statement its build wrote",
		Long: `Check IMAGE (an output, such as img.qcow2, or the statement img.provenance.json
itself) against the provenance statement its build wrote beside it: the file
must be one the statement names, with the SHA-256 it gives. The statement's
other files are checked where they are still there. Prints what went into the
build: the elements, the dibvm, the lock file. With --trust, the statement
must also be signed (IMAGE.provenance.json.sig, see create --sign) by one of
the keys FILE lists, one a line as in OpenSSH's allowed_signers or
authorized_keys. Exit status 1 means a file differs from the statement, or
the signature is missing or not by a trusted key.`,
		Args: exactlyOne("the IMAGE to check"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var trusted sshsign.Trusted
			if trust != "" {
				var err error
				if trusted, err = sshsign.LoadTrusted(trust); err != nil {
					return usagef("--trust %s: %v", trust, err)
				}
			}
			return verify(cmd.OutOrStdout(), args[0], trusted)
		},
	}
	cmd.Flags().StringVar(&trust, "trust", "", "accept only a statement signed by a key this file lists (allowed_signers or authorized_keys lines)")
	return cmd
}

// statementSuffix names a build's provenance statement: IMAGE.provenance.json.
const statementSuffix = ".provenance.json"

// verify checks the file at path, and the other outputs beside it,
// against their build's statement.
func verify(out io.Writer, path string, trusted sshsign.Trusted) error {
	statement, named := findStatement(path)
	st, err := provenance.Read(statement)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: no provenance statement beside it (%s): dibvm writes one with every image it builds", path, statement)
	}
	if err != nil {
		return err
	}
	mismatches, err := st.Check(filepath.Dir(statement))
	if err != nil {
		return fmt.Errorf("%s: %w", statement, err)
	}
	found := named == ""
	for _, s := range st.Subject {
		found = found || s.Name == named
	}
	if !found {
		return fmt.Errorf("%s is not among the files %s names", path, statement)
	}
	bad := false
	for _, m := range mismatches {
		switch {
		case m.Got == "" && m.Name != named:
			fmt.Fprintf(out, "%s: not here (not checked)\n", termsafe.String(m.Name))
		case m.Got == "":
			fmt.Fprintf(out, "%s: not here\n", termsafe.String(m.Name))
			bad = true
		default:
			fmt.Fprintf(out, "%s: DIFFERS: sha256 %s, the statement says %s\n", termsafe.String(m.Name), m.Got, termsafe.String(m.Want))
			bad = true
		}
	}
	checked := len(st.Subject) - len(mismatches)
	for _, m := range mismatches {
		if m.Got != "" {
			checked++
		}
	}
	p := st.Predicate
	fmt.Fprintf(out, "%s: %d of %d files checked; built by dibvm %s (commit %s) from the elements %s\n",
		termsafe.String(statement), checked, len(st.Subject),
		termsafe.String(p.RunDetails.Builder.Version["dibvm"]), termsafe.String(p.RunDetails.Builder.Version["commit"]),
		termsafe.String(strings.Join(p.BuildDefinition.ExternalParameters.Elements, " ")))
	if in := p.BuildDefinition.InternalParameters; in != nil {
		for _, n := range in.NotReproducible {
			fmt.Fprintf(out, "not reproducible, as the build said: %s\n", termsafe.String(n))
		}
	}
	if !checkSignature(out, statement, trusted) {
		bad = true
	}
	if bad {
		return exitCode(1)
	}
	fmt.Fprintln(out, "OK: the files match the statement")
	return nil
}

// checkSignature says who signed the statement, checked against the
// trusted keys where there are some, and whether that passes: unsigned
// passes only when no key is trusted.
func checkSignature(out io.Writer, statement string, trusted sshsign.Trusted) bool {
	sigFile := statement + outputs.SignatureSuffix
	sig, err := os.ReadFile(sigFile)
	switch {
	case errors.Is(err, os.ErrNotExist) && trusted == nil:
		fmt.Fprintf(out, "%s: not signed (see dibvm create --sign)\n", termsafe.String(statement))
		return true
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(out, "%s: NOT SIGNED, and --trust asks for a signature (%s)\n", termsafe.String(statement), termsafe.String(sigFile))
		return false
	case err != nil:
		fmt.Fprintf(out, "%s: %v\n", termsafe.String(sigFile), err)
		return false
	}
	if trusted == nil {
		fmt.Fprintf(out, "%s: signed, but not checked: give --trust FILE with the keys you accept\n", termsafe.String(sigFile))
		return true
	}
	data, err := os.ReadFile(statement)
	if err != nil {
		fmt.Fprintf(out, "%s: %v\n", termsafe.String(statement), err)
		return false
	}
	who, err := trusted.Verify(data, sig, provenance.SignatureNamespace)
	if err != nil {
		fmt.Fprintf(out, "%s: BAD SIGNATURE: %s\n", termsafe.String(sigFile), termsafe.String(err.Error()))
		return false
	}
	fmt.Fprintf(out, "%s: signed by %s, a trusted key\n", termsafe.String(sigFile), who)
	return true
}

// findStatement is the statement for the file at path, and the name of
// that file among its subjects ("" when path is the statement).
func findStatement(path string) (statement, named string) {
	if strings.HasSuffix(path, statementSuffix) {
		return path, ""
	}
	dir, name := filepath.Split(path)
	// img.qcow2, img.docker.tar, img.tar.gz: the image name is before
	// the first dot that leaves a statement.
	for i := range len(name) {
		if name[i] == '.' {
			if s := filepath.Join(dir, name[:i]+statementSuffix); exists(s) {
				return s, name
			}
		}
	}
	return filepath.Join(dir, strings.TrimSuffix(name, filepath.Ext(name))+statementSuffix), name
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
