// Package installtypes chooses which install.d/<prefix>-<type>-install
// directories run, as DIB's install-types element does: for each prefix,
// the type DIB_INSTALLTYPE_<prefix> names, else DIB_DEFAULT_INSTALLTYPE
// (default "source").
package installtypes

import (
	"sort"
	"strings"
)

const suffix = "-install"

// Default is the install type when DIB_DEFAULT_INSTALLTYPE is not set.
const Default = "source"

// Select returns the directories among dirs (names directly in install.d)
// whose scripts run. environ is the build's environment as KEY=VALUE.
//
// DIB_INSTALLTYPE_<prefix> names the type for one prefix; '_' in the
// variable name stands for '-' in the prefix. A prefix named that way
// never falls back to the default type, even when no directory of the
// named type exists. Other prefixes get the default type.
func Select(dirs []string, environ []string) []string {
	have := map[string]bool{}
	for _, d := range dirs {
		have[d] = true
	}
	def := Default
	specified := map[string]bool{}
	var out []string
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if k == "DIB_DEFAULT_INSTALLTYPE" && v != "" {
			def = v
		}
		rest, ok := strings.CutPrefix(k, "DIB_INSTALLTYPE_")
		if !ok {
			continue
		}
		prefix := strings.ReplaceAll(rest, "_", "-")
		specified[prefix] = true
		if d := prefix + "-" + v + suffix; have[d] {
			out = append(out, d)
		}
	}
	for _, d := range dirs {
		prefix, ok := strings.CutSuffix(d, "-"+def+suffix)
		if ok && prefix != "" && !specified[prefix] {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return dedupe(out)
}

func dedupe(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
