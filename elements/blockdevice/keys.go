package blockdevice

import (
	"fmt"
	"slices"

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
