package blockdevice

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/dibvm/dibvm/guestagent/api"
)

// lvmYAML is DIB's lvm node, as written. Its name and base name the node
// only: the physical volumes say which partitions LVM gets.
type lvmYAML struct {
	PVs []struct {
		Name    string
		Base    string
		Options []string
	}
	VGs []struct {
		Name    string
		Base    []string
		Options []string
	}
	LVs []struct {
		Name     string
		Base     string
		Size     string
		Extents  string
		Type     string
		ThinPool string `yaml:"thin-pool"`
		Options  []string
	}
}

// parseLVM reads an lvm node into l, refusing what DIB's lvm plugin
// refuses (a missing name, base or size, a base that names nothing) and
// what lvcreate would fail on later.
func parseLVM(l *api.Layout, v *yaml.Node) error {
	if err := checkShape("lvm", "", v); err != nil {
		return err
	}
	var y lvmYAML
	if err := v.Decode(&y); err != nil {
		return err
	}
	if l.LVM != nil {
		return errors.New("only one lvm node is supported: put every pv, vg and lv in it")
	}
	if len(y.PVs) == 0 || len(y.VGs) == 0 || len(y.LVs) == 0 {
		return errors.New("needs pvs, vgs and lvs, each a list of at least one")
	}
	lvm := &api.LVM{}
	var errs []error
	for _, pv := range y.PVs {
		if pv.Name == "" || pv.Base == "" {
			errs = append(errs, fmt.Errorf("pv %s: needs a name and a base (the partition it is made on)", orUnnamed(pv.Name)))
		}
		lvm.PVs = append(lvm.PVs, api.PhysicalVolume{Name: pv.Name, Base: pv.Base, Options: pv.Options})
	}
	for _, vg := range y.VGs {
		if vg.Name == "" || len(vg.Base) == 0 {
			errs = append(errs, fmt.Errorf("vg %s: needs a name and a base (a list of pvs)", orUnnamed(vg.Name)))
		}
		lvm.VGs = append(lvm.VGs, api.VolumeGroup{Name: vg.Name, Bases: vg.Base, Options: vg.Options})
	}
	for _, lv := range y.LVs {
		vol, err := parseLV(lv.Name, lv.Base, lv.Size, lv.Extents, lv.Type, lv.ThinPool)
		if err != nil {
			errs = append(errs, fmt.Errorf("lv %s: %w", orUnnamed(lv.Name), err))
		}
		vol.Options = lv.Options
		lvm.LVs = append(lvm.LVs, vol)
	}
	l.LVM = lvm
	return errors.Join(errs...)
}

var extentsRE = regexp.MustCompile(`^[1-9][0-9]*(%(VG|FREE|PVS))?$`)

// parseLV reads one logical volume's name, group, type and size.
func parseLV(name, base, size, extents, typ, thinPool string) (api.LogicalVolume, error) {
	lv := api.LogicalVolume{Name: name, VG: base, Type: typ, ThinPool: thinPool}
	switch {
	case name == "" || base == "":
		return lv, errors.New("needs a name and a base (the vg it is made in)")
	case typ != "" && typ != "thin" && typ != "thin-pool":
		return lv, fmt.Errorf("type %q: DIB knows thin and thin-pool only", typ)
	case (typ == "thin") != (thinPool != ""):
		return lv, errors.New("a thin volume needs type: thin and a thin-pool, and only it takes a thin-pool")
	case typ == "thin" && size == "":
		return lv, errors.New("a thin volume needs a size, its virtual size")
	case size == "" && extents == "":
		return lv, errors.New("needs a size or extents")
	case size != "":
		s, err := parseSize(size)
		if err != nil || s.Percent > 0 {
			return lv, fmt.Errorf("size %q: want a size such as 2GiB (for a share of the vg, give extents: 25%%VG)", size)
		}
		lv.Size = s.Bytes - s.Bytes%api.ExtentBytes
		if lv.Size == 0 {
			return lv, fmt.Errorf("size %q: less than one 4 MiB extent", size)
		}
	case !extentsRE.MatchString(extents):
		return lv, fmt.Errorf("extents %q: want a number of 4 MiB extents or a percentage such as 23%%VG, 50%%FREE or 10%%PVS", extents)
	default:
		lv.Extents = extents
	}
	return lv, nil
}

// checkThin checks that a thin volume's pool is a thin pool of its
// group that comes before it, as lvcreate needs it made first.
func checkThin(lvm *api.LVM, i int) error {
	lv := lvm.LVs[i]
	if lv.Type != "thin" {
		return nil
	}
	for _, pool := range lvm.LVs[:i] {
		if pool.Name == lv.ThinPool {
			if pool.Type != "thin-pool" || pool.VG != lv.VG {
				return fmt.Errorf("thin-pool %s: is no thin-pool of vg %s", lv.ThinPool, lv.VG)
			}
			return nil
		}
	}
	return fmt.Errorf("thin-pool %q names no thin-pool listed before it", lv.ThinPool)
}

func orUnnamed(name string) string {
	if name == "" {
		return "(unnamed)"
	}
	return name
}

// lvmNameRE is what LVM takes as a volume group or logical volume name.
var lvmNameRE = regexp.MustCompile(`^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$`)

// checkLVMName says what is wrong with name as an LVM name, if anything.
func checkLVMName(name string) error {
	switch {
	case len(name) > 127 || !lvmNameRE.MatchString(name):
		return fmt.Errorf("%q is not an LVM name: letters, digits and + _ . -, not starting with -, at most 127", name)
	case name == "." || name == "..":
		return fmt.Errorf("%q is not an LVM name", name)
	}
	for _, reserved := range []string{"_cdata", "_cmeta", "_corig", "_mimage", "_mlog", "_pmspare", "_rimage", "_rmeta", "_tdata", "_tmeta", "_vorigin", "_vdata", "snapshot", "pvmove"} {
		if strings.Contains(name, reserved) && (reserved[0] == '_' || strings.HasPrefix(name, reserved)) {
			return fmt.Errorf("%q is not an LVM name: LVM keeps %s for its own volumes", name, reserved)
		}
	}
	return nil
}

// refusedOptions are options that would point LVM at devices other than
// the image's partitions, or change which devices or configuration it
// reads: the helper gives it the image's devices alone.
var refusedOptions = []string{"--devices", "--devicesfile", "--config", "--commandprofile", "--profile", "--metadataprofile", "--driverloaded"}

// checkOptions says what is wrong with options given to an LVM command.
func checkOptions(options []string) error {
	for _, o := range options {
		opt, _, _ := strings.Cut(o, "=")
		switch {
		case slices.Contains(refusedOptions, opt):
			return fmt.Errorf("options: %s is refused: dibvm gives LVM the image's own devices and settings only", opt)
		case strings.HasPrefix(o, "/"):
			return fmt.Errorf("options: %q names a path: LVM works on the image's partitions only, which the base keys name", o)
		}
	}
	return nil
}

// checkLVM checks the lvm node against the partitions: every base names
// something of the right kind, every name is used once, and each pv,
// vg and lv is used by one thing.
func checkLVM(l *api.Layout, names map[string]string) []error {
	var errs []error
	lvm := l.LVM
	parts := map[string]*api.Partition{}
	for i := range l.Partitions {
		parts[l.Partitions[i].Name] = &l.Partitions[i]
	}
	claim := func(kind, name string) {
		if name == "" {
			return
		}
		if other, ok := names[name]; ok {
			errs = append(errs, fmt.Errorf("%s %s: the name is %s's too: DIB needs every node's name once", kind, name, other))
		}
		names[name] = kind + " " + name
	}
	pvUser := map[string]string{}
	for _, pv := range lvm.PVs {
		claim("pv", pv.Name)
		p, ok := parts[pv.Base]
		switch {
		case pv.Base == "":
		case !ok:
			errs = append(errs, fmt.Errorf("pv %s: base %q names no partition", pv.Name, pv.Base))
		case p.FS != nil:
			errs = append(errs, fmt.Errorf("pv %s: partition %s has a filesystem (mkfs) too: a partition is either a pv or a filesystem", pv.Name, pv.Base))
		case pvUser[pv.Base] != "":
			errs = append(errs, fmt.Errorf("pv %s: partition %s is pv %s already", pv.Name, pv.Base, pvUser[pv.Base]))
		}
		pvUser[pv.Base] = pv.Name
		if err := checkOptions(pv.Options); err != nil {
			errs = append(errs, fmt.Errorf("pv %s: %w", pv.Name, err))
		}
	}
	errs = append(errs, checkVGs(lvm, claim)...)
	for i, lv := range lvm.LVs {
		claim("lv", lv.Name)
		if err := checkThin(lvm, i); err != nil {
			errs = append(errs, fmt.Errorf("lv %s: %w", lv.Name, err))
		}
		if err := checkLVMName(lv.Name); lv.Name != "" && err != nil {
			errs = append(errs, fmt.Errorf("lv %s: %w", lv.Name, err))
		}
		if lv.VG != "" && !slices.ContainsFunc(lvm.VGs, func(vg api.VolumeGroup) bool { return vg.Name == lv.VG }) {
			errs = append(errs, fmt.Errorf("lv %s: base %q names no vg", lv.Name, lv.VG))
		}
		if err := checkOptions(lv.Options); err != nil {
			errs = append(errs, fmt.Errorf("lv %s: %w", lv.Name, err))
		}
	}
	return errs
}

// checkVGs checks the volume groups: their names, and that each pv they
// name exists and is in no other group.
func checkVGs(lvm *api.LVM, claim func(kind, name string)) []error {
	var errs []error
	inVG := map[string]string{}
	for _, vg := range lvm.VGs {
		claim("vg", vg.Name)
		if err := checkLVMName(vg.Name); vg.Name != "" && err != nil {
			errs = append(errs, fmt.Errorf("vg %s: %w", vg.Name, err))
		}
		for _, b := range vg.Bases {
			switch {
			case !slices.ContainsFunc(lvm.PVs, func(pv api.PhysicalVolume) bool { return pv.Name == b }):
				errs = append(errs, fmt.Errorf("vg %s: base %q names no pv", vg.Name, b))
			case inVG[b] != "":
				errs = append(errs, fmt.Errorf("vg %s: pv %s is in vg %s already", vg.Name, b, inVG[b]))
			}
			inVG[b] = vg.Name
		}
		if err := checkOptions(vg.Options); err != nil {
			errs = append(errs, fmt.Errorf("vg %s: %w", vg.Name, err))
		}
	}
	return errs
}
