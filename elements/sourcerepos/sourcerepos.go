// Package sourcerepos reads DIB's source-repository-* files: the sources
// an element registers for the source-repositories element to fetch, one
// a line as
//
//	<name> <type> [<destination> [<location> [<ref>]]]
//
// and the settings that override a line's fields
// (DIB_REPOTYPE_<name>, DIB_REPOLOCATION_<name>, DIB_REPOREF_<name>).
// The element expands shell variables in each line before it reads it,
// so the host can check only what no expansion changes: a line whose
// fields hold a '$' or a backquote is taken as it comes in the guest.
package sourcerepos

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
)

// FilePrefix starts the names of the files an element registers its
// sources in, at the top of the element.
const FilePrefix = "source-repository-"

// Types are the repository types DIB knows.
var Types = []string{"git", "tar", "file", "package"}

// Repo is one line of a source-repository file.
type Repo struct {
	Element, File string
	Line          int
	Name, Type    string
	// Destination is the absolute path in the image; Location where the
	// source comes from; Ref the type's ref (a git ref, a tarball's
	// directory). Each may be empty.
	Destination, Location, Ref string
	// Expanded says that the line holds shell expansions, which only the
	// guest resolves: its fields are as written.
	Expanded bool
}

// line is DIB's pattern for a line after expansion.
var line = regexp.MustCompile(`^([^ ]+) ([^ ]+) ?(/[^ ]+)? ?([^ ]+)? ?([^ ]*)$`)

// Read reads the source-repository files at the top of an element's
// tree, in name order; an error names the element, the file and the line.
func Read(element string, fsys fs.FS) ([]Repo, error) {
	names, err := fs.Glob(fsys, FilePrefix+"*")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var repos []Repo
	for _, name := range names {
		if strings.HasSuffix(name, "~") {
			continue // an editor's backup, as DIB skips it
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("element %s: %s: %w", element, name, err)
		}
		rs, err := Parse(element, path.Base(name), data)
		if err != nil {
			return nil, err
		}
		repos = append(repos, rs...)
	}
	return repos, nil
}

// Parse reads one source-repository file of element.
func Parse(element, file string, data []byte) ([]Repo, error) {
	var repos []Repo
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		// The element runs each line through echo, which joins its
		// words with one space.
		text := strings.Join(strings.Fields(sc.Text()), " ")
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		r := Repo{Element: element, File: file, Line: n, Expanded: strings.ContainsAny(text, "$`")}
		m := line.FindStringSubmatch(text)
		if m == nil && !r.Expanded {
			return nil, fmt.Errorf("element %s: %s line %d: %q is not <name> <type> <destination> <location> [<ref>] (the destination an absolute path, at most five fields)", element, file, n, text)
		}
		if m != nil {
			r.Name, r.Type, r.Destination, r.Location, r.Ref = m[1], m[2], m[3], m[4], m[5]
		}
		if !r.Expanded && !known(r.Type) {
			return nil, fmt.Errorf("element %s: %s line %d: unknown type %q for %s: the types are %s", element, file, n, r.Type, r.Name, strings.Join(Types, ", "))
		}
		repos = append(repos, r)
	}
	return repos, sc.Err()
}

func known(t string) bool {
	for _, k := range Types {
		if t == k {
			return true
		}
	}
	return false
}

// Var is the name of the override setting of prefix (DIB_REPOLOCATION_
// and the like) for a repository: every character of name outside
// [A-Za-z0-9] becomes '_', as DIB makes it.
func Var(prefix, name string) string {
	b := []byte(name)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			b[i] = '_'
		}
	}
	return prefix + string(b)
}

// Override applies the caller's DIB_REPOTYPE_, DIB_REPOLOCATION_ and
// DIB_REPOREF_ settings to r; a type they set must be known.
func (r Repo) Override(lookup func(string) (string, bool)) (Repo, error) {
	if r.Name == "" {
		return r, nil
	}
	if v, ok := lookup(Var("DIB_REPOTYPE_", r.Name)); ok && v != "" {
		if !known(v) {
			return r, fmt.Errorf("%s=%s (source repository %s of element %s, %s line %d): unknown type: the types are %s",
				Var("DIB_REPOTYPE_", r.Name), v, r.Name, r.Element, r.File, r.Line, strings.Join(Types, ", "))
		}
		r.Type = v
	}
	if v, ok := lookup(Var("DIB_REPOLOCATION_", r.Name)); ok && v != "" {
		r.Location = v
	}
	if v, ok := lookup(Var("DIB_REPOREF_", r.Name)); ok && v != "" {
		r.Ref = v
	}
	return r, nil
}

// LocalPath is the host path a location names, if it names one: an
// absolute or ./-relative path, or a file:// URL. Git's own forms of a
// remote (host:path, URLs) are not.
func LocalPath(location string) (string, bool) {
	switch {
	case strings.HasPrefix(location, "file://"):
		return strings.TrimPrefix(location, "file://"), true
	case strings.HasPrefix(location, "/"), strings.HasPrefix(location, "./"), strings.HasPrefix(location, "../"), location == ".":
		return location, true
	}
	return "", false
}
