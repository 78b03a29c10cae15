package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/host/plan"
	"github.com/dibvm/dibvm/host/shellquote"
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
		Args:              atLeastOne("at least one ELEMENT"),
		ValidArgsFunction: completeElements,
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
	for _, w := range lib.Warnings() {
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

// checkElements does the element work of a build that needs no VM: the
// same checks as create's.
func checkElements(stderr io.Writer, els []*elements.Element) error {
	hooks, warnings, err := elements.BuildHooks(els, os.Environ())
	if err != nil {
		return err
	}
	arch, _ := vmimage.DebianArch(runtime.GOARCH)
	w, err := plan.CheckElements(els, hooks, os.LookupEnv, arch)
	for _, w := range append(warnings, w...) {
		fmt.Fprintf(stderr, "dibvm: warning: %s\n", w)
	}
	return err
}

// elementEnv is element-info --env's output, byte for byte as DIB's
// (names in set order, which for dibvm is sorted).
func elementEnv(els []*elements.Element) string {
	byName := map[string]string{}
	for _, e := range els {
		byName[e.Name] = e.Path
		if !e.Builtin {
			// DIB names each element by its real path: absolute, with
			// symlinks resolved.
			if p, err := filepath.Abs(e.Path); err == nil {
				if real, err := filepath.EvalSymlinks(p); err == nil {
					p = real
				}
				byName[e.Name] = p
			}
		}
	}
	names := elements.Names(els)
	yaml, array := elements.ImageElementVars(names, func(n string) string { return byName[n] })
	return fmt.Sprintf("export IMAGE_ELEMENT=%s\nexport IMAGE_ELEMENT_YAML=%s\nfunction get_image_element_array {\n  echo \"%s\"\n};\nexport -f get_image_element_array;\n",
		shellquote.Quote(strings.Join(names, " ")), shellquote.Quote(yaml), strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`").Replace(array))
}
