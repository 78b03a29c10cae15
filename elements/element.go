// Package elements is the diskimage-builder element format: finding
// elements on ELEMENTS_PATH and in the built-in library, expanding their
// dependencies, and merging their hooks into one tree per phase, with
// DIB's semantics.
package elements

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Element is one element: a directory of hooks and metadata files.
type Element struct {
	Name string
	// Path says where the element was found: a directory on
	// ELEMENTS_PATH, or BuiltinPrefix + name for the built-in library.
	Path string
	// FS holds the element's files.
	FS fs.FS
	// Deps and Provides are the element-deps and element-provides lists.
	Deps     []string
	Provides []string
	// Builtin is set for elements of the built-in library, whose embedded
	// files carry no modes (see Hooks).
	Builtin bool
	// Size is the bytes of the element's regular files, for an element
	// on disk: what it adds to the input disk.
	Size int64
}

// BuiltinPrefix starts the Path of a built-in element.
const BuiltinPrefix = "builtin:"

//go:embed all:library
var builtinFS embed.FS

// Builtin is the built-in element library, one directory per element.
func Builtin() fs.FS {
	sub, err := fs.Sub(builtinFS, "library")
	if err != nil {
		panic(err) // the embedded tree always has library/
	}
	return sub
}

// pythonSpace is what Python's str.strip() strips, which DIB applies to
// each line: Unicode white space and the ASCII separators \x1c to \x1f.
func pythonSpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// ParseList reads an element-deps or element-provides file: one name a
// line, surrounding blanks trimmed as DIB trims them, empty lines dropped, duplicates kept
// once in first-seen order. As in DIB, there is no comment syntax.
func ParseList(data []byte) []string {
	var out []string
	seen := map[string]bool{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		name := strings.TrimFunc(string(line), pythonSpace)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, name)
	}
	return out
}

// Library finds elements by name: each ELEMENTS_PATH directory in order
// (an earlier one wins), then the built-in library.
type Library struct {
	sources []source
	found   map[string]*Element
	// warnings are notes for the user, such as an element that overrides
	// another of the same name in a later ELEMENTS_PATH directory.
	warnings []string
	// shadowed are the built-in elements that ELEMENTS_PATH's override.
	shadowed []string
}

// Warnings are the library's notes for the user so far: an element that
// overrides another of its name, and, in one line, the built-in elements
// that ELEMENTS_PATH's override (an upstream DIB tree overrides many).
func (l *Library) Warnings() []string {
	w := append([]string(nil), l.warnings...)
	if len(l.shadowed) > 0 {
		names := append([]string(nil), l.shadowed...)
		sort.Strings(names)
		w = append(w, fmt.Sprintf("ELEMENTS_PATH's %s override the built-in %s of the same name", plural(len(names), "element", "elements")+" "+strings.Join(names, ", "), plural(len(names), "one", "ones")))
	}
	return w
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

type source struct {
	dir  string   // "" for the built-in library
	fs   fs.FS    // the built-in library; nil for a directory
	root *os.Root // the directory: every element is read inside it
}

// NewLibrary makes a library from a colon-separated ELEMENTS_PATH and the
// built-in elements. Every ELEMENTS_PATH entry must be a directory.
func NewLibrary(elementsPath string, builtin fs.FS) (*Library, error) {
	l := &Library{found: map[string]*Element{}}
	for _, dir := range filepath.SplitList(elementsPath) {
		if dir == "" {
			// DIB refuses it too ("ELEMENTS_PATH entry '' is not a
			// directory"): most often a variable that was not set.
			return nil, fmt.Errorf("ELEMENTS_PATH %q has an empty entry (a doubled colon, or one at an end): remove it", elementsPath)
		}
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("ELEMENTS_PATH entry %q is not a directory: fix or remove it", dir)
		}
		// The root stays open for the life of the process: a command
		// reads a handful of elements, each through it.
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, fmt.Errorf("ELEMENTS_PATH entry %q: %w", dir, err)
		}
		l.sources = append(l.sources, source{dir: dir, root: root})
	}
	if builtin != nil {
		l.sources = append(l.sources, source{fs: builtin})
	}
	return l, nil
}

// ErrNotFound matches (with errors.Is) errors for elements that exist
// nowhere.
var ErrNotFound = errors.New("element not found")

// NotFoundError is an element that is on no source.
type NotFoundError struct {
	Name     string
	Searched string // where it was looked for
	NeededBy string // the chain of elements that needs it, if any
}

func (e *NotFoundError) Error() string {
	msg := "element " + e.Name + " not found in " + e.Searched
	if e.NeededBy != "" {
		msg += " (needed by " + e.NeededBy + ")"
	}
	return msg + ": add its directory to ELEMENTS_PATH, or an element that provides it"
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// Get returns the element called name from the first source that has it.
func (l *Library) Get(name string) (*Element, error) {
	if e, ok := l.found[name]; ok {
		return e, nil
	}
	if !validName(name) {
		return nil, fmt.Errorf("%q is not an element name (an element is one directory on ELEMENTS_PATH): %w", name, ErrNotFound)
	}
	var e *Element
	for _, src := range l.sources {
		fi, err := src.stat(name)
		if err != nil {
			var esc *EscapeError
			if errors.As(err, &esc) {
				return nil, err
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("element %s in %s: %w", name, src.dir, err)
			}
			continue
		}
		if !fi.IsDir() {
			continue
		}
		if e != nil {
			if src.dir == "" {
				l.shadowed = append(l.shadowed, name)
			} else {
				l.warnings = append(l.warnings, fmt.Sprintf("element %s at %s overrides %s", name, e.Path, describe(src, name)))
			}
			continue
		}
		sub, err := src.open(name)
		if err != nil {
			return nil, fmt.Errorf("element %s in %s: %w", name, src.dir, err)
		}
		e = &Element{Name: name, Path: describe(src, name), FS: sub, Builtin: src.dir == ""}
		if !e.Builtin {
			if err := checkTree(e); err != nil {
				return nil, err
			}
		}
	}
	if e == nil {
		return nil, &NotFoundError{Name: name, Searched: l.searched()}
	}
	var err error
	if e.Deps, err = readList(e, "element-deps"); err != nil {
		return nil, err
	}
	if e.Provides, err = readList(e, "element-provides"); err != nil {
		return nil, err
	}
	l.found[name] = e
	return e, nil
}

// stat finds name in the source, following a symlink that stays in it:
// an element's directory may be a link to another directory of the same
// ELEMENTS_PATH entry, never out of it, or a link in a cloned tree could
// ship any directory of the user's into the VM.
func (s source) stat(name string) (fs.FileInfo, error) {
	if s.fs != nil {
		return fs.Stat(s.fs, name)
	}
	fi, err := s.root.Stat(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		if target, lerr := s.root.Readlink(name); lerr == nil {
			return nil, &EscapeError{Element: name, Dir: s.dir, File: name, Target: target,
				Reason: "the element's directory is a link out of its ELEMENTS_PATH entry, and dibvm reads an element only inside that entry: add the directory it leads to to ELEMENTS_PATH instead"}
		}
	}
	return fi, err
}

// open gives the element's files: on disk, through a root that keeps
// every read inside the element's directory (see checkTree).
func (s source) open(name string) (fs.FS, error) {
	if s.fs != nil {
		return fs.Sub(s.fs, name)
	}
	root, err := s.root.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	return newTreeFS(root), nil
}

func describe(src source, name string) string {
	if src.dir == "" {
		return BuiltinPrefix + name
	}
	return filepath.Join(src.dir, name)
}

func (l *Library) searched() string {
	var dirs []string
	for _, s := range l.sources {
		if s.dir != "" {
			dirs = append(dirs, s.dir)
		}
	}
	if len(dirs) == 0 {
		return "the built-in elements (ELEMENTS_PATH is empty)"
	}
	return "ELEMENTS_PATH (" + strings.Join(dirs, ":") + ") or the built-in elements"
}

// validName keeps names to a single path component, so that a name read
// from an element-deps file cannot reach outside ELEMENTS_PATH.
// Nor may it hold spaces or control characters: names are printed.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\\") &&
		!strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError }) &&
		path.Clean(name) == name
}

func readList(e *Element, file string) ([]string, error) {
	data, err := fs.ReadFile(e.FS, file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("element %s: read %s: %w", e.Name, file, err)
	}
	return ParseList(data), nil
}

// Names returns the names of elements, sorted.
func Names(els []*Element) []string {
	out := make([]string, len(els))
	for i, e := range els {
		out[i] = e.Name
	}
	sort.Strings(out)
	return out
}

// Names are the names of every element the library has, ELEMENTS_PATH's
// and the built-in ones, sorted, each once: what a shell completes.
func (l *Library) Names() []string {
	seen := map[string]bool{}
	for _, s := range l.sources {
		var entries []fs.DirEntry
		if s.root != nil {
			entries, _ = fs.ReadDir(s.root.FS(), ".")
		} else {
			entries, _ = fs.ReadDir(s.fs, ".")
		}
		for _, e := range entries {
			if validName(e.Name()) && (e.IsDir() || e.Type()&fs.ModeSymlink != 0) {
				seen[e.Name()] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}
