// Package imagedef reads the YAML files of DIB's `diskimage-builder`
// command: a list of image definitions, each the settings of one
// disk-image-create run. Definitions of the same image name merge as DIB
// merges them, and each image becomes the command line and the
// variables of its disk-image-create.
package imagedef

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/dibvm/dibvm/host/shellquote"
)

// Var is one variable of an image's environment.
type Var struct{ Name, Value string }

// Image is one image to build: its definitions merged, in the order DIB
// keeps, as disk-image-create's arguments and variables.
type Image struct {
	Name string
	// Where is the file and line of the image's first definition.
	Where string
	// Ramdisk asks for ramdisk-image-create instead.
	Ramdisk bool
	// Args are disk-image-create's, without the command's name.
	Args []string
	// Env is the image's environment, set over the caller's.
	Env []Var
}

// Environ is the image's environment over base (entries "NAME=value"):
// the image's variables first, and none of base's of the same names.
func (im Image) Environ(base []string) []string {
	set := map[string]bool{}
	out := make([]string, 0, len(base)+len(im.Env))
	for _, v := range im.Env {
		set[v.Name] = true
		out = append(out, v.Name+"="+v.Value)
	}
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			out = append(out, kv)
		}
	}
	return out
}

// String is the command line as diskimage-builder prints it before it
// runs it: the image's variables, then the command, each word quoted
// for a shell where it needs it.
func (im Image) String() string {
	var words []string
	for _, v := range im.Env {
		words = append(words, v.Name+"="+shellquote.Join(v.Value))
	}
	tool := "disk-image-create"
	if im.Ramdisk {
		tool = "ramdisk-image-create"
	}
	return strings.Join(append(words, shellquote.Join(append([]string{tool}, im.Args...)...)), " ")
}

// Definition is one entry of a file, as read: the keys it sets.
type Definition struct {
	where  string
	values map[string]value
}

// Read reads the definitions in one file's content; name is the file's
// name for messages. A key DIB's schema does not have, or a value of the
// wrong kind, is an error naming the file, its line and the key.
func Read(name string, data []byte) ([]Definition, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: holds no image definitions: give a YAML list of them, e.g. \"- imagename: img\\n  elements: [vm, debian-minimal]\"", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s:%d: a second YAML document: diskimage-builder reads one list of image definitions a file", name, extra.Line)
	}
	list := doc.Content[0]
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: is not a list: give a YAML list of image definitions, each starting with \"- \"", name, list.Line)
	}
	defs := make([]Definition, 0, len(list.Content))
	for i, entry := range list.Content {
		where := fmt.Sprintf("%s:%d", name, entry.Line)
		if entry.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s: image definition %d is not a map of keys (imagename, elements, types, ...)", where, i+1)
		}
		d := Definition{where: where, values: map[string]value{}}
		for j := 0; j+1 < len(entry.Content); j += 2 {
			k, v := entry.Content[j], entry.Content[j+1]
			prop, ok := lookup(k.Value)
			if !ok {
				return nil, fmt.Errorf("%s:%d: unknown key %q in image definition %d; diskimage-builder's keys are %s", name, k.Line, k.Value, i+1, strings.Join(Keys(), ", "))
			}
			if _, dup := d.values[k.Value]; dup {
				return nil, fmt.Errorf("%s:%d: key %q is set twice in image definition %d", name, k.Line, k.Value, i+1)
			}
			val, err := prop.read(v)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %v", name, v.Line, k.Value, err)
			}
			d.values[k.Value] = val
		}
		defs = append(defs, d)
	}
	return defs, nil
}

// Merge makes images of definitions as DIB does: a definition without
// an imagename belongs to the image before it (the first, to "image");
// definitions of the same name merge into the first, lists appended,
// maps updated key by key, and other values replaced.
func Merge(defs []Definition) []Image {
	var order []string
	merged := map[string]*Definition{}
	previous := "image"
	for _, d := range defs {
		name := previous
		if v, ok := d.values["imagename"]; ok {
			name = v.str
		}
		previous = name
		m, ok := merged[name]
		if !ok {
			c := Definition{where: d.where, values: map[string]value{}}
			m, merged[name] = &c, &c
			order = append(order, name)
		}
		for k, v := range d.values {
			m.values[k] = m.values[k].merge(v)
		}
	}
	images := make([]Image, 0, len(order))
	for _, name := range order {
		images = append(images, merged[name].image(name))
	}
	return images
}

// image is the command line of a merged definition: its arguments in
// the order of DIB's schema, whatever the order of the keys.
func (d *Definition) image(name string) Image {
	im := Image{Name: name, Where: d.where}
	for _, p := range properties {
		v, ok := d.values[p.key]
		if !ok {
			continue
		}
		switch p.kind {
		case envMap:
			for _, kv := range v.pairs {
				im.Env = append(im.Env, Var{kv[0], kv[1]})
			}
		case marker:
			im.Ramdisk = v.flag
		default:
			im.Args = append(im.Args, p.args(v)...)
		}
	}
	return im
}

// value is one key's value: the field its kind uses.
type value struct {
	str   string
	num   int
	flag  bool
	list  []string
	pairs [][2]string // a map, in the file's order
}

// merge is v with later merged in, as DIB's merge_entry: lists are
// appended, maps updated, anything else replaced.
func (v value) merge(later value) value {
	switch {
	case later.list != nil:
		v.list = append(slices.Clone(v.list), later.list...)
		if v.list == nil {
			v.list = []string{}
		}
		return v
	case later.pairs != nil:
		out := slices.Clone(v.pairs)
		for _, kv := range later.pairs {
			i := slices.IndexFunc(out, func(p [2]string) bool { return p[0] == kv[0] })
			if i >= 0 {
				out[i][1] = kv[1]
			} else {
				out = append(out, kv)
			}
		}
		if out == nil {
			out = [][2]string{}
		}
		v.pairs = out
		return v
	}
	return later
}

// Keys are the keys of DIB's schema, in its order.
func Keys() []string {
	var out []string
	for _, p := range properties {
		out = append(out, p.key)
	}
	return out
}

func lookup(key string) (property, bool) {
	for _, p := range properties {
		if p.key == key {
			return p, true
		}
	}
	return property{}, false
}

// itoa is strconv.Itoa, for the arguments of integer keys.
func itoa(n int) string { return strconv.Itoa(n) }
