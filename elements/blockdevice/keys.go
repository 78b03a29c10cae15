package blockdevice

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// knownKeys are the keys DIB's block device plugins read, by node: those
// dibvm acts on and those it takes without effect (a local_loop's size
// and directory, a name given to a mkfs, mount or fstab node).
var knownKeys = map[string][]string{
	"local_loop":   {"name", "size", "directory"},
	"partitioning": {"base", "label", "align", "partitions", "name"},
	"partition":    {"name", "flags", "type", "size", "mkfs"},
	"mkfs":         {"type", "label", "uuid", "opts", "name", "mount", "base"},
	"mount":        {"mount_point", "name", "fstab", "base"},
	"fstab":        {"options", "fsck-passno", "dump-freq", "name", "base"},
	"lvm":          {"name", "base", "pvs", "vgs", "lvs"},
	"pv":           {"name", "base", "options"},
	"vg":           {"name", "base", "options"},
	"lv":           {"name", "base", "size", "extents", "type", "thin-pool", "options"},
}

// UnknownKeys lists the keys of a block device configuration that no
// block device plugin reads, each with where it is, e.g. "partition
// root: sise". DIB passes over them without a word; they are most often
// misspellings, so dibvm names them. A configuration that does not parse
// has none: Parse says what is wrong with it.
func UnknownKeys(data []byte) []string {
	var nodes []map[string]yaml.Node
	if yaml.Unmarshal(data, &nodes) != nil {
		return nil
	}
	var out []string
	for _, n := range nodes {
		for kind, v := range n {
			if _, ok := knownKeys[kind]; !ok {
				continue // Parse refuses a node it does not know
			}
			walkKeys(kind, kind, &v, &out)
		}
	}
	return out
}

// walkKeys checks the mapping v, a node of kind, and those nested in it.
func walkKeys(kind, where string, v *yaml.Node, out *[]string) {
	if v.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		key, val := v.Content[i].Value, v.Content[i+1]
		if !slices.Contains(knownKeys[kind], key) {
			*out = append(*out, fmt.Sprintf("%s: %s", where, key))
			continue
		}
		switch {
		case kind == "partitioning" && key == "partitions" && val.Kind == yaml.SequenceNode:
			for _, p := range val.Content {
				walkKeys("partition", "partition "+nameOf(p), p, out)
			}
		case kind == "lvm" && (key == "pvs" || key == "vgs" || key == "lvs") && val.Kind == yaml.SequenceNode:
			for _, item := range val.Content {
				walkKeys(key[:2], key[:2]+" "+nameOf(item), item, out)
			}
		case key == "mkfs" || key == "mount" || key == "fstab":
			walkKeys(key, where+" "+key, val, out)
		}
	}
}

// nameOf is the name: of a mapping, for messages.
func nameOf(v *yaml.Node) string {
	for i := 0; i+1 < len(v.Content); i += 2 {
		if v.Content[i].Value == "name" {
			return v.Content[i+1].Value
		}
	}
	return "(unnamed)"
}

// shapes say, for each node, which keys hold a mapping, a list (of what)
// or a single value; keys not listed are single values.
var shapes = map[string]map[string]string{
	"partitioning": {"partitions": "list:partition"},
	"partition":    {"flags": "list:value", "mkfs": "mapping:mkfs"},
	"mkfs":         {"mount": "mapping:mount"},
	"mount":        {"fstab": "mapping:fstab"},
	"fstab":        {},
	"lvm":          {"base": "any", "pvs": "list:pv", "vgs": "list:vg", "lvs": "list:lv"},
	"pv":           {"options": "list:value"},
	"vg":           {"base": "list:value", "options": "list:value"},
	"lv":           {"options": "list:value"},
}

// checkShape says, in the configuration's terms rather than Go's, where a
// node of kind holds a list, a mapping or a value where another is
// wanted.
func checkShape(kind, where string, v *yaml.Node) error {
	if v.Kind != yaml.MappingNode {
		return fmt.Errorf("%sline %d: want a mapping of settings, got %s", where, v.Line, kindOf(v))
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		key, val := v.Content[i].Value, v.Content[i+1]
		want, ok := shapes[kind][key]
		if !ok {
			want = "value"
		}
		shape, of, _ := strings.Cut(want, ":")
		switch {
		case shape == "any":
		case shape == "value" && val.Kind != yaml.ScalarNode:
			return fmt.Errorf("%sline %d: %s: want a single value, got %s", where, val.Line, key, kindOf(val))
		case shape == "mapping":
			if err := checkShape(of, where+key+": ", val); err != nil {
				return err
			}
		case shape == "list" && val.Kind != yaml.SequenceNode:
			return fmt.Errorf("%sline %d: %s: want a list, got %s", where, val.Line, key, kindOf(val))
		case shape == "list":
			for _, item := range val.Content {
				if of == "value" {
					if item.Kind != yaml.ScalarNode {
						return fmt.Errorf("%sline %d: %s: want a list of values, got %s in it", where, item.Line, key, kindOf(item))
					}
					continue
				}
				if err := checkShape(of, where+of+" "+nameOf(item)+": ", item); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func kindOf(v *yaml.Node) string {
	switch v.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", v.Value)
	}
	return "nothing"
}
