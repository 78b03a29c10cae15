package imagedef

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// kind is how a key's value is written and becomes arguments, after the
// classes of DIB's diskimage_builder.py.
type kind int

const (
	str        kind = iota // "-o value"
	strEnum                // a string of a fixed set
	integer                // "--key N", N at least 1
	repeat                 // a count: the flag that many times
	flag                   // true: the flag alone
	marker                 // a boolean that chooses the command
	list                   // "-t a,b"
	enumList               // a list of strings of a fixed set
	positional             // each item an argument of its own
	envMap                 // the image's environment
	pairMap                // "--key k=v,k2=v2"
)

// property is one key of DIB's schema.
type property struct {
	key  string
	kind kind
	arg  string   // the flag; "--" + key when empty
	enum []string // the values a strEnum or enumList allows
	max  int      // the most a repeat allows
}

// properties are DIB's keys, in the order DIB writes their arguments.
var properties = []property{
	{key: "imagename", kind: str, arg: "-o"},
	{key: "arch", kind: strEnum, arg: "-a", enum: []string{"aarch64", "amd64", "arm64", "armhf", "powerpc", "ppc64", "ppc64el", "ppc64le", "s390x", "x86_64"}},
	{key: "types", kind: enumList, arg: "-t", enum: []string{"qcow2", "tar", "tgz", "squashfs", "vhd", "docker", "aci", "raw"}},
	{key: "environment", kind: envMap},
	{key: "ramdisk", kind: marker},
	{key: "debug-trace", kind: repeat, arg: "-x", max: 2},
	{key: "uncompressed", kind: flag, arg: "-u"},
	{key: "clear", kind: flag, arg: "-c"},
	{key: "logfile", kind: str},
	{key: "checksum", kind: flag},
	{key: "image-size", kind: integer},
	{key: "image-extra-size", kind: integer},
	{key: "image-cache", kind: str},
	{key: "max-online-resize", kind: integer},
	{key: "min-tmpfs", kind: integer},
	{key: "mkfs-journal-size", kind: integer},
	{key: "mkfs-options", kind: str},
	{key: "no-tmpfs", kind: flag},
	{key: "offline", kind: flag},
	{key: "qemu-img-options", kind: pairMap},
	{key: "root-label", kind: str},
	{key: "ramdisk-element", kind: str},
	{key: "install-type", kind: strEnum, enum: []string{"source", "package"}},
	{key: "docker-target", kind: str},
	{key: "packages", kind: list, arg: "-p"},
	{key: "skip-base", kind: flag, arg: "-n"},
	{key: "elements", kind: positional},
}

func (p property) flagName() string {
	if p.arg == "" {
		return "--" + p.key
	}
	return p.arg
}

// args are the arguments of v, as DIB's to_argument makes them: an
// empty string or list gives none.
func (p property) args(v value) []string {
	switch p.kind {
	case str, strEnum:
		if v.str == "" {
			return nil
		}
		return []string{p.flagName(), v.str}
	case integer:
		return []string{p.flagName(), itoa(v.num)}
	case repeat:
		var out []string
		for range v.num {
			out = append(out, p.flagName())
		}
		return out
	case flag:
		if v.flag {
			return []string{p.flagName()}
		}
	case list, enumList:
		if len(v.list) > 0 {
			return []string{p.flagName(), strings.Join(v.list, ",")}
		}
	case positional:
		return v.list
	case pairMap:
		var kv []string
		for _, p := range v.pairs {
			kv = append(kv, p[0]+"="+p[1])
		}
		if len(kv) > 0 {
			return []string{p.flagName(), strings.Join(kv, ",")}
		}
	}
	return nil
}

// read checks n against the key's type, as DIB's JSON schema does, and
// reads its value.
func (p property) read(n *yaml.Node) (value, error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch p.kind {
	case str, strEnum:
		s, err := scalar(n, "!!str", "a string")
		if err == nil && p.kind == strEnum && !slices.Contains(p.enum, s) {
			err = fmt.Errorf("%q is none of %s", s, strings.Join(p.enum, ", "))
		}
		return value{str: s}, err
	case integer, repeat:
		var v value
		if _, err := scalar(n, "!!int", "an integer"); err != nil {
			return v, err
		}
		if err := n.Decode(&v.num); err != nil {
			return v, err
		}
		if p.kind == integer && v.num < 1 {
			return v, fmt.Errorf("%d: give at least 1", v.num)
		}
		if p.kind == repeat && (v.num < 0 || v.num > p.max) {
			return v, fmt.Errorf("%d: give 0 to %d", v.num, p.max)
		}
		return v, nil
	case flag, marker:
		var v value
		if _, err := scalar(n, "!!bool", "true or false"); err != nil {
			return v, err
		}
		return v, n.Decode(&v.flag)
	case list, enumList, positional:
		return p.readList(n)
	}
	return readMap(n)
}

func (p property) readList(n *yaml.Node) (value, error) {
	if n.Kind != yaml.SequenceNode {
		return value{}, fmt.Errorf("give a list of strings, e.g. [a, b]")
	}
	v := value{list: []string{}}
	for _, item := range n.Content {
		s, err := scalar(item, "!!str", "a list of strings")
		if err != nil {
			return v, err
		}
		if p.kind == enumList && !slices.Contains(p.enum, s) {
			return v, fmt.Errorf("%q is none of %s", s, strings.Join(p.enum, ", "))
		}
		v.list = append(v.list, s)
	}
	return v, nil
}

// readMap reads a map of strings, in the file's order.
func readMap(n *yaml.Node) (value, error) {
	if n.Kind != yaml.MappingNode {
		return value{}, fmt.Errorf("give a map of names to strings, e.g. {DIB_RELEASE: bookworm}")
	}
	v := value{pairs: [][2]string{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, err := scalar(n.Content[i], "!!str", "a map of names to strings")
		if err != nil {
			return v, err
		}
		s, err := scalar(n.Content[i+1], "!!str", "a map of names to strings")
		if err != nil {
			return v, fmt.Errorf("%s: %v (quote it: %s: \"%s\")", k, err, k, n.Content[i+1].Value)
		}
		v.pairs = append(v.pairs, [2]string{k, s})
	}
	return v, nil
}

// scalar is n's text, if n is a scalar of the tag; want says what was
// wanted, for the error.
func scalar(n *yaml.Node, tag, want string) (string, error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != tag {
		got := n.ShortTag()
		switch n.Kind {
		case yaml.SequenceNode:
			got = "a list"
		case yaml.MappingNode:
			got = "a map"
		}
		return "", fmt.Errorf("give %s, not %s", want, strings.TrimPrefix(got, "!!"))
	}
	return n.Value, nil
}
