package agentclient

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestShellQuoteRoundTrip(t *testing.T) {
	for _, args := range [][]string{
		{"echo", "plain"},
		{"printf", "%s\n", "it's", "two words", "$HOME", "`id`", "*", "", "a\nb", `back\slash`, "-n"},
	} {
		line := ShellQuote(args)
		// sh -c 'for a; do printf "<%s>"; done' sh LINE...
		out, err := exec.Command("sh", "-c", `eval "set -- $1"; for a; do printf '<%s>' "$a"; done`, "sh", line).Output()
		if err != nil {
			t.Fatal(err)
		}
		var want strings.Builder
		for _, a := range args {
			want.WriteString("<" + a + ">")
		}
		if string(out) != want.String() {
			t.Errorf("ShellQuote(%q) = %s; sh read it back as %q", args, line, out)
		}
	}
	if !reflect.DeepEqual(ShellQuote([]string{"a", "b"}), "a b") {
		t.Error("plain words should stay unquoted")
	}
}
