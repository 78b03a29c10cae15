// Package envvar reads a variable from an environment held as a list of
// "NAME=value" entries, as os.Environ returns it: dibvm reads the
// caller's environment as given to a build, which tests and callers
// set, not the process's own.
package envvar

import "strings"

// Lookup is the value of name in environ and whether environ sets it.
// The first entry for name counts; an entry without "=" sets nothing.
func Lookup(environ []string, name string) (string, bool) {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// Get is the value of name in environ, empty when environ does not set
// it.
func Get(environ []string, name string) string {
	v, _ := Lookup(environ, name)
	return v
}
