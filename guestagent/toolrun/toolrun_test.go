package toolrun

import (
	"errors"
	"strings"
	"testing"
)

func TestRunSaysWhatFailed(t *testing.T) {
	err := Run(Exec{}, "sh", "-c", "echo out; echo err >&2; exit 3")
	if err == nil {
		t.Fatal("a tool that exits 3 succeeded")
	}
	if want := "sh -c echo out; echo err >&2; exit 3: exit status 3: out\nerr"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if err := Run(Exec{}, "true"); err != nil {
		t.Errorf("true: %v", err)
	}
}

func TestExecGivesStdin(t *testing.T) {
	out, err := Exec{}.Combined(strings.NewReader("label: gpt\n"), "cat")
	if err != nil || string(out) != "label: gpt\n" {
		t.Errorf("cat = %q, %v", out, err)
	}
	out, err = Exec{}.Output("sh", "-c", "echo only-stdout; echo not-this >&2")
	if err != nil || string(out) != "only-stdout\n" {
		t.Errorf("Output = %q, %v", out, err)
	}
}

func TestFakeRecords(t *testing.T) {
	f := &Fake{Reply: func(call []string) ([]byte, error) {
		if call[0] == "false" {
			return []byte("no"), errors.New("exit status 1")
		}
		return []byte("yes"), nil
	}}
	if err := Run(f, "mkfs.ext4", "-q", "/dev/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Combined(strings.NewReader("script"), "sfdisk", "/dev/x"); err != nil {
		t.Fatal(err)
	}
	if err := Run(f, "false"); err == nil || err.Error() != "false : exit status 1: no" {
		t.Errorf("false: %v", err)
	}
	if got := strings.Join(f.Lines(), "|"); got != "mkfs.ext4 -q /dev/x|sfdisk /dev/x|false" {
		t.Errorf("lines = %q", got)
	}
	if f.Stdins[1] != "script" || f.Stdins[0] != "" {
		t.Errorf("stdins = %q", f.Stdins)
	}
}
