package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/host/imagedef"
	"github.com/dibvm/dibvm/host/plan"
	"github.com/dibvm/dibvm/host/termsafe"
)

// buildFlags are diskimage-builder's two flags, and the flags of create
// that are dibvm's own and the helper VM's, which every image shares.
type buildFlags struct {
	dryRun, stopOnFailure bool
	shared                createFlags
}

func buildCommand() *cobra.Command {
	b := &buildFlags{}
	cmd := &cobra.Command{
		Use:     "build [flags] FILE.yaml...",
		Aliases: []string{"diskimage-builder"},
		Short:   "Build the images YAML files define, as diskimage-builder does",
		Long: `Build each image the YAML files define, as DIB's diskimage-builder
command does: a file is a list of image definitions, each a map of
DIB's keys:

  ` + strings.Join(imagedef.Keys(), ", ") + `

Each key is the disk-image-create flag of its name (imagename is -o,
types -t, packages -p, elements the elements, environment the build's
variables). A definition without imagename belongs to the one before
it; definitions of the same imagename merge (lists appended,
environment updated, other values replaced). Each image is built as
disk-image-create would build it, one after the other, its command line
printed on stderr first. Every image is checked (its keys, flags,
elements and disk layout) before the first one boots. dibvm's own flags
and the helper VM's hold for every image.`,
		Example: `  diskimage-builder images.yaml
  dibvm build --dry-run images.yaml more.yaml`,
		Args: atLeastOne("at least one YAML file of image definitions"),
		RunE: func(cmd *cobra.Command, files []string) error {
			return b.run(files)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&b.dryRun, "dry-run", false, "print the disk-image-create command of each image, and build none")
	f.BoolVar(&b.stopOnFailure, "stop-on-failure", false, "build no more images once one fails")
	g := b.shared.register(&cobra.Command{})
	f.AddFlagSet(g.own)
	f.AddFlagSet(g.vm)
	return cmd
}

// imageBuild is one image of the files: its definition, and the create
// flags and options its command line makes.
type imageBuild struct {
	image imagedef.Image
	c     *createFlags
	o     plan.Options
}

func (b *buildFlags) run(files []string) error {
	var defs []imagedef.Definition
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return usagef("%v: give diskimage-builder a YAML file of image definitions", err)
		}
		d, err := imagedef.Read(name, data)
		if err != nil {
			return usagef("%v", err)
		}
		defs = append(defs, d...)
	}
	images := imagedef.Merge(defs)
	builds, err := b.check(images)
	if err != nil {
		return err
	}
	if b.dryRun {
		for _, im := range images {
			fmt.Fprintf(os.Stderr, "%s\n\n", im)
		}
		return nil
	}
	return b.buildAll(builds)
}

// check reads every image's command line as create would and, short of
// a dry run, prepares its plan (elements, hooks, disk layout), so that
// no image boots while another could not.
func (b *buildFlags) check(images []imagedef.Image) ([]imageBuild, error) {
	var p problems
	var builds []imageBuild
	for _, im := range images {
		where := fmt.Sprintf("%s: image %s", im.Where, im.Name)
		ib, err := b.prepare(im)
		if err != nil {
			var sub problems
			sub.addErr(err)
			for _, s := range sub {
				p.add("%s: %s", where, s)
			}
			continue
		}
		builds = append(builds, ib)
	}
	return builds, p.err()
}

func (b *buildFlags) prepare(im imagedef.Image) (imageBuild, error) {
	if im.Ramdisk {
		return imageBuild{}, usagef("ramdisk: true asks for ramdisk-image-create, which dibvm does not have: build the ramdisk's elements with disk-image-create instead")
	}
	ib := imageBuild{image: im, c: &createFlags{}}
	cmd := &cobra.Command{}
	ib.c.register(cmd)
	f := cmd.Flags()
	if err := f.Parse(im.Args); err != nil {
		return ib, usagef("%v", err)
	}
	ib.c.share(&b.shared)
	ib.c.imageEnv = im.Environ
	if f.NArg() == 0 {
		return ib, usagef("elements: give the image's elements, e.g. elements: [vm, debian-minimal]")
	}
	var err error
	if ib.o, err = ib.c.check(f, f.Args()); err != nil || b.dryRun {
		return ib, err
	}
	// The plan is made again when the image's turn comes, with its
	// output and checkpoints; here it is made only to find problems.
	trial := ib.o
	trial.Stdout, trial.Stderr, trial.Checkpoints = io.Discard, io.Discard, nil
	_, err = plan.Prepare(trial)
	return ib, err
}

// share gives c the settings of from's flags that are dibvm's own and
// the helper VM's (the flag groups own and vm of register); an image's
// definition sets only DIB's.
func (c *createFlags) share(from *createFlags) {
	c.vf = from.vf
	c.progress, c.timeout, c.scratch, c.checkpoints = from.progress, from.timeout, from.scratch, from.checkpoints
	c.o.ExplicitEnv, c.o.NoHostEnv = slices.Clone(from.o.ExplicitEnv), from.o.NoHostEnv
}

// buildAll builds the images one after the other, printing each
// command line first as diskimage-builder does; a failed image stops
// the rest only with --stop-on-failure.
func (b *buildFlags) buildAll(builds []imageBuild) error {
	// A signal stops the image being built (runBuild hears it too) and
	// every image after it.
	stopped, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	var failed []string
	for i, ib := range builds {
		if stopped.Err() != nil {
			return fmt.Errorf("stopped by a signal: %d image(s) not built", len(builds)-i)
		}
		fmt.Fprintf(os.Stderr, "%s\n\n", ib.image)
		if err := ib.build(); err != nil {
			// As Main shows an error: its text may come from the guest.
			var p problems
			p.addErr(err)
			w := termsafe.NewWriter(os.Stderr)
			for _, s := range p {
				fmt.Fprintf(w, "dibvm: image %s: %s\n", ib.image.Name, s)
			}
			w.Flush()
			failed = append(failed, ib.image.Name)
			if b.stopOnFailure {
				if rest := len(builds) - i - 1; rest > 0 {
					fmt.Fprintf(os.Stderr, "dibvm: --stop-on-failure: %d more image(s) not built\n", rest)
				}
				break
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d images failed: %s", len(failed), len(builds), strings.Join(failed, ", "))
	}
	return nil
}

func (ib imageBuild) build() error {
	o := ib.o
	closeLog, err := ib.c.output(&o)
	if err != nil {
		return err
	}
	defer closeLog()
	return runBuild(&ib.c.vf, o, ib.c.timeout, ib.c.summary)
}
