package diskimage

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dibvm/dibvm/elements/blockdevice"
	"github.com/dibvm/dibvm/guestagent/api"
)

// partition writes the planned partition table onto dev with sfdisk.
func (m *Maker) partition(dev string, plan *blockdevice.Plan) error {
	script := partitionScript(m.Spec.Layout, plan)
	if out, err := m.Run.Combined(strings.NewReader(script), "sfdisk", "--quiet", "--wipe", "always", dev); err != nil {
		return fmt.Errorf("sfdisk: %v: %s\nscript:\n%s", err, out, script)
	}
	return nil
}

// partitionScript is sfdisk's script for the planned partition table,
// every partition at its planned sector. On an MBR the extended partition
// comes just before the first logical one, which makes sfdisk number the
// logical partitions from 5.
func partitionScript(l *api.Layout, plan *blockdevice.Plan) string {
	var script strings.Builder
	fmt.Fprintf(&script, "label: %s\nunit: sectors\n", map[string]string{"mbr": "dos", "gpt": "gpt"}[l.Label])
	if l.DiskID != "" {
		fmt.Fprintf(&script, "label-id: %s\n", l.DiskID)
	}
	for i, p := range l.Partitions {
		e := plan.Partitions[i]
		if x := plan.Extended; x != nil && e.Number == 5 {
			fmt.Fprintf(&script, "start=%d, size=%d, type=f\n", x.Start, x.Size)
		}
		fields := []string{fmt.Sprintf("start=%d, size=%d", e.Start, e.Size), "type=" + partType(l.Label, p.Type)}
		if l.Label == "mbr" && p.Boot() {
			fields = append(fields, "bootable")
		}
		if l.Label == "gpt" && p.Name != "" {
			fields = append(fields, "name="+strconv.Quote(p.Name))
		}
		if l.Label == "gpt" && p.UUID != "" {
			fields = append(fields, "uuid="+p.UUID)
		}
		script.WriteString(strings.Join(fields, ", ") + "\n")
	}
	return script.String()
}

// partType maps DIB's partition types (sgdisk codes such as EF00 for GPT,
// MBR ids such as 0x83) to what sfdisk takes.
func partType(label, t string) string {
	t = strings.ToUpper(strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X"))
	if label == "mbr" {
		if t == "" {
			return "83"
		}
		return t
	}
	gpt := map[string]string{
		"EF00": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", // EFI system
		"EF02": "21686148-6449-6E6F-744E-656564454649", // BIOS boot
		"8300": "0FC63DAF-8483-4772-8E79-3D69D8477DE4", // Linux filesystem
		"8200": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", // Linux swap
		"8E00": "E6D6D379-F507-44C2-A23C-238F2A3DF928", // Linux LVM
		"4100": "9E1A2D38-C612-4316-AA26-8B49521E5A8B", // PowerPC PReP boot
		"EA00": "BC13C2FF-59E6-4262-A352-B275FD6F7172", // /boot (XBOOTLDR), as Fedora's cloud images have it
		"8302": "933AC7E1-2EB4-4F13-B844-0E14E2AEF915", // Linux /home
		"8304": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", // Linux root, x86-64
		"8305": "B921B045-1DF0-41C3-AF44-4C6F280D3FAE", // Linux root, arm64
		"FD00": "A19D880F-05FC-4D3B-A006-743F0F84911E", // Linux RAID
		"0700": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", // Microsoft basic data
	}
	if g, ok := gpt[t]; ok {
		return g
	}
	if t == "" {
		return gpt["8300"]
	}
	return t // a GUID already
}
