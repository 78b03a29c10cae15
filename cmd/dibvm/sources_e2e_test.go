//go:build e2e

package main_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// debianSources gives the Debian builds of these tests their apt sources:
// DIB's default (the release, its -updates and the security archive), as
// the image gets it, unless the mirror these tests reach serves -updates
// or security indexes whose Valid-Until has passed. A mirror frozen at
// some day does (some CI machines reach only such a snapshot), and apt
// rightly refuses them; the test then sets the same sources in
// DIB_APT_SOURCES_CONF with [check-valid-until=no], and says so. It
// returns the variables to set and the line each sources file must hold.
func debianSources(t *testing.T) (env []string, lists map[string]string) {
	t.Helper()
	lists = map[string]string{
		"default":  "deb http://deb.debian.org/debian stable main",
		"updates":  "deb http://deb.debian.org/debian stable-updates main",
		"security": "deb http://security.debian.org/debian-security stable-security main",
	}
	var stale []string
	for _, u := range []string{
		"http://deb.debian.org/debian/dists/stable-updates/InRelease",
		"http://security.debian.org/debian-security/dists/stable-security/InRelease",
	} {
		if until, err := validUntil(u); err != nil {
			t.Fatalf("%s: %v", u, err)
		} else if !until.IsZero() && until.Before(time.Now()) {
			stale = append(stale, fmt.Sprintf("%s (Valid-Until %s)", u, until.Format(time.RFC3339)))
		}
	}
	if len(stale) > 0 {
		t.Logf("the mirror serves expired indexes, which apt refuses: %s; building with DIB_APT_SOURCES_CONF and [check-valid-until=no]", strings.Join(stale, ", "))
		var conf []string
		for _, name := range []string{"default", "updates", "security"} {
			lists[name] = strings.Replace(lists[name], "deb ", "deb [check-valid-until=no] ", 1)
			conf = append(conf, name+":"+lists[name])
		}
		env = append(env, "DIB_APT_SOURCES_CONF="+strings.Join(conf, "\n"))
	}
	for name := range lists {
		lists[name] += "\n"
	}
	return env, lists
}

// debianArchiveState is the Date of Debian's -updates and security
// indexes: while it does not change, a build and the checks of the image
// it made see the same packages.
func debianArchiveState(t *testing.T) string {
	t.Helper()
	var dates []string
	for _, u := range []string{
		"http://deb.debian.org/debian/dists/stable-updates/InRelease",
		"http://security.debian.org/debian-security/dists/stable-security/InRelease",
	} {
		d, err := inReleaseField(u, "Date")
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		dates = append(dates, d)
	}
	return strings.Join(dates, " | ")
}

// validUntil reads the Valid-Until field of a suite's InRelease (zero
// when it has none). The signature is apt's business, not this test's.
func validUntil(u string) (time.Time, error) {
	v, err := inReleaseField(u, "Valid-Until")
	if err != nil || v == "" {
		return time.Time{}, err
	}
	return time.Parse(time.RFC1123, v)
}

// inReleaseField reads a field of a suite's InRelease ("" when absent).
func inReleaseField(u, field string) (string, error) {
	resp, err := http.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s", resp.Status)
	}
	// The fields come after the clear-signed message's armor header and
	// its blank line, and end at the next blank line.
	sc := bufio.NewScanner(resp.Body)
	blank := 0
	for sc.Scan() && blank < 2 {
		if sc.Text() == "" {
			blank++
		}
		if v, ok := strings.CutPrefix(sc.Text(), field+": "); ok {
			return v, nil
		}
	}
	return "", sc.Err()
}
