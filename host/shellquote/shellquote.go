// Package shellquote writes words that a POSIX shell reads back as
// written: the command lines and variables dibvm prints for the user or
// a shell to read, the commands it runs on a remote host over SSH, and
// the one it gives QEMU to start.
package shellquote

import "strings"

// Quote is s in single quotes, always, each single quote in s closing
// the quotes, escaped, and opening them again: sh reads it back as s,
// whatever it holds.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Join joins args into one line that sh reads back as the same args.
// Words of letters, digits and @%_-+=:,./ stay as they are, so that a
// line shown to the user reads plainly; others are quoted.
func Join(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%_-+=:,./") == "" {
			q[i] = a
		} else {
			q[i] = Quote(a)
		}
	}
	return strings.Join(q, " ")
}
