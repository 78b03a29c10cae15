package session

import (
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
)

// A hook that fails because glibc finds the helper's CPU below the image's
// x86-64 level says which flag builds it.
func TestHookHint(t *testing.T) {
	isa := &api.Failure{Tail: []string{"Fatal glibc error: CPU ISA level is lower than required"}}
	other := &api.Failure{Tail: []string{"E: Unable to locate package nosuch"}}
	for _, c := range []struct {
		f          *api.Failure
		disk, want string
	}{
		{isa, "", "build again with --cpu-model max"},
		{isa, "the output disk is full", "the output disk is full\nThe image's binaries need a newer x86-64 level"},
		{other, "", ""},
		{other, "the output disk is full", "the output disk is full"},
	} {
		got := hookHint(c.f, c.disk)
		if c.want == "" && got != "" || !strings.Contains(got, c.want) {
			t.Errorf("hookHint(%q, %q) = %q, want %q", c.f.Tail, c.disk, got, c.want)
		}
	}
}
