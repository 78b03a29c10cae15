package cli

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/pkginstalls"
	"github.com/dibvm/dibvm/host/termsafe"
	"github.com/dibvm/dibvm/vmimage"
)

func elementInfoCommand() *cobra.Command {
	var env, check bool
	cmd := &cobra.Command{
		Use:   "element-info [--env] [--check] ELEMENT...",
		Short: "Expand elements' dependencies, as DIB's element-info does",
		Long: `Expand the elements' dependencies (ELEMENTS_PATH first, then the built-in
elements) and print the resulting set on one line, or with --env as the
shell variables disk-image-create evaluates. --expand-dependencies is
accepted for older callers; expansion always happens.

--check also merges the elements' hooks and squashes their package-installs
files with the current environment, reporting every problem DIB would find
only during a build.`,
		Args: atLeastOne("at least one ELEMENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Warnings name files of element trees, which may be anyone's.
			stderr := termsafe.NewWriter(cmd.ErrOrStderr())
			defer stderr.Flush()
			return elementInfo(cmd.OutOrStdout(), stderr, args, env, check)
		},
	}
	cmd.Flags().BoolVarP(&env, "env", "e", false, "print shell variables: IMAGE_ELEMENT, IMAGE_ELEMENT_YAML and get_image_element_array")
	cmd.Flags().BoolP("expand-dependencies", "d", false, "expand dependencies (always done; kept for compatibility)")
	cmd.Flags().BoolVar(&check, "check", false, "also merge hooks and squash package-installs, reporting problems")
	return cmd
}

func elementInfo(stdout, stderr io.Writer, names []string, env, check bool) error {
	lib, err := elements.NewLibrary(os.Getenv("ELEMENTS_PATH"), elements.Builtin())
	if err != nil {
		return err
	}
	els, err := elements.Expand(lib, names)
	for _, w := range lib.Warnings {
		fmt.Fprintf(stderr, "dibvm: warning: %s\n", w)
	}
	if err != nil {
		return err
	}
	if check {
		if err := checkElements(stderr, els); err != nil {
			return err
		}
	}
	if env {
		fmt.Fprint(stdout, elementEnv(els))
	} else {
		fmt.Fprintln(stdout, strings.Join(elements.Names(els), " "))
	}
	return nil
}

// checkElements does the element work of a build that needs no VM.
func checkElements(stderr io.Writer, els []*elements.Element) error {
	hooks, warnings, err := elements.BuildHooks(els, os.Environ())
	if err != nil {
		return err
	}
	// when: conditions read variables that the elements' environment.d
	// files set (ubuntu-minimal's DIB_UBUNTU_KERNEL), which only the
	// build evaluates: one that some environment.d file assigns counts
	// as empty here unless the caller set it, so that the files are
	// checked without rejecting what a build would accept.
	assigned := envAssigned(hooks)
	_, w, err := pkginstalls.Squash(els, func(name string) (string, bool) {
		v, ok := buildEnv(name)
		return v, ok || assigned[name]
	})
	warnings = append(warnings, w...)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "dibvm: warning: %s\n", w)
	}
	return err
}

// assignment is a shell variable assignment at the start of a line.
var assignment = regexp.MustCompile(`(?m)^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=`)

// envAssigned are the variables the environment.d files assign, read as
// text: nothing of an element runs on the host.
func envAssigned(h *elements.Hooks) map[string]bool {
	names := map[string]bool{}
	files, _ := h.Environment()
	for _, f := range files {
		data, err := fs.ReadFile(f.Element.FS, f.File())
		if err != nil {
			continue
		}
		for _, m := range assignment.FindAllSubmatch(data, -1) {
			names[string(m[1])] = true
		}
	}
	return names
}

// buildEnv is the environment a build's elements see; ARCH defaults to
// the host's, in Debian's naming, as DIB's does.
func buildEnv(name string) (string, bool) {
	if v, ok := os.LookupEnv(name); ok {
		return v, true
	}
	if name == "ARCH" {
		if a, err := vmimage.DebianArch(runtime.GOARCH); err == nil {
			return a, true
		}
	}
	return "", false
}

// elementEnv is element-info --env's output, byte for byte as DIB's
// (names in set order, which for dibvm is sorted).
func elementEnv(els []*elements.Element) string {
	byName := map[string]string{}
	for _, e := range els {
		byName[e.Name] = e.Path
	}
	names := elements.Names(els)
	yaml, array := elements.ImageElementVars(names, func(n string) string { return byName[n] })
	return fmt.Sprintf("export IMAGE_ELEMENT=%s\nexport IMAGE_ELEMENT_YAML=%s\nfunction get_image_element_array {\n  echo \"%s\"\n};\nexport -f get_image_element_array;\n",
		shellQuote(strings.Join(names, " ")), shellQuote(yaml), strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`").Replace(array))
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
