package envvar

import "testing"

func TestLookup(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin:/bin",
		"EMPTY=",
		"DIB_RELEASE=trixie",
		"EQUALS=a=b=c",
		"DIB_RELEASE=bookworm", // a second entry: the first counts
		"NOVALUE",
		"FS_TYPE_X=xfs",
	}
	for _, tc := range []struct {
		name  string
		value string
		set   bool
	}{
		{"PATH", "/usr/bin:/bin", true},
		{"EMPTY", "", true},
		{"DIB_RELEASE", "trixie", true},
		{"EQUALS", "a=b=c", true},
		{"NOVALUE", "", false},
		{"FS_TYPE", "", false}, // a prefix of another name
		{"path", "", false},    // names are case-sensitive
		{"", "", false},
		{"UNSET", "", false},
	} {
		v, ok := Lookup(environ, tc.name)
		if v != tc.value || ok != tc.set {
			t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tc.name, v, ok, tc.value, tc.set)
		}
		if g := Get(environ, tc.name); g != tc.value {
			t.Errorf("Get(%q) = %q; want %q", tc.name, g, tc.value)
		}
	}
	if v, ok := Lookup(nil, "PATH"); v != "" || ok {
		t.Errorf("Lookup in no environment = %q, %v", v, ok)
	}
}
