package shellquote

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// readBack is what sh makes of line as the arguments of a command, each
// in <>.
func readBack(t *testing.T, line string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `eval "set -- $1"; for a; do printf '<%s>' "$a"; done`, "sh", line).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestShellQuoteRoundTrip(t *testing.T) {
	for _, args := range [][]string{
		{"echo", "plain"},
		{"printf", "%s\n", "it's", "two words", "$HOME", "`id`", "*", "", "a\nb", `back\slash`, "-n"},
	} {
		line := Join(args...)
		var want strings.Builder
		for _, a := range args {
			want.WriteString("<" + a + ">")
		}
		if out := readBack(t, line); out != want.String() {
			t.Errorf("Join(%q) = %s; sh read it back as %q", args, line, out)
		}
	}
	if !reflect.DeepEqual(Join("a", "b"), "a b") {
		t.Error("plain words should stay unquoted")
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "'plain'"},
		{"", "''"},
		{"two words", "'two words'"},
		{"it's", `'it'\''s'`},
		{"''", `''\'''\'''`},
		{"/opt/my tools,v2/dibvm", "'/opt/my tools,v2/dibvm'"},
		{"$HOME `id` *", "'$HOME `id` *'"},
		{"a\nb", "'a\nb'"},
	} {
		got := Quote(tc.in)
		if got != tc.want {
			t.Errorf("Quote(%q) = %s; want %s", tc.in, got, tc.want)
		}
		if out := readBack(t, got); out != "<"+tc.in+">" {
			t.Errorf("Quote(%q) = %s; sh read it back as %q", tc.in, got, out)
		}
	}
}

func TestJoinQuotesOnlyWhatNeedsIt(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dibvm", "boot", "/tmp/out/image.qcow2"}, "dibvm boot /tmp/out/image.qcow2"},
		{[]string{"docker", "import", "my image.docker.tar", "img:latest"}, "docker import 'my image.docker.tar' img:latest"},
		{[]string{"env", "A=1", ""}, "env A=1 ''"},
		{[]string{"--", "it's"}, `-- 'it'\''s'`},
		{nil, ""},
	} {
		if got := Join(tc.args...); got != tc.want {
			t.Errorf("Join(%q) = %s; want %s", tc.args, got, tc.want)
		}
	}
}
