package breakpoint

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	s, err := Parse("before-install, after-finalise,after-error,before-pre-install.d")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Before("install") || !s.After("finalise") || !s.OnError() || !s.Before("pre-install") {
		t.Errorf("parsed %v", s)
	}
	if s.Before("finalise") || s.After("install") {
		t.Errorf("extra breakpoints in %v", s)
	}
	if s, err := Parse(""); err != nil || len(s) != 0 {
		t.Errorf("empty: %v %v", s, err)
	}
	for in, want := range map[string]string{
		"before-instal":            `unknown phase "instal"`,
		"after-block-device-size":  `unknown phase "block-device-size"`,
		"during-install":           `"during-install" is not before-<phase>`,
		"before-install,after-err": `unknown phase "err"`,
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) error %v, want %q", in, err, want)
		}
	}
}
