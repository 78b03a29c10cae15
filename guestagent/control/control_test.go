package control

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
)

func TestTellAndRead(t *testing.T) {
	var ctl, log bytes.Buffer
	h := New(&ctl, strings.NewReader("keep\ngo\n"), &log)
	h.Tell(api.Message{Step: &api.Step{Name: "root.d"}})
	if err := h.Send(api.Message{Step: &api.Step{Name: "root.d", Done: true}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []api.Step{{Name: "root.d"}, {Name: "root.d", Done: true}} {
		m, err := api.ReadMessage(&ctl)
		if err != nil || m.Step == nil || *m.Step != want {
			t.Fatalf("read %+v, %v; want step %+v", m, err, want)
		}
	}
	for _, want := range []string{"keep\n", "go\n"} {
		if got, err := h.ReadLine(); got != want || err != nil {
			t.Errorf("ReadLine = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := h.ReadLine(); err == nil {
		t.Error("a line past the host's last")
	}
	if log.Len() != 0 {
		t.Errorf("logged %q", log.String())
	}
}

type broken struct{}

func (broken) Write([]byte) (int, error) { return 0, errors.New("gone") }

func TestTellSaysWhatWasLost(t *testing.T) {
	var log bytes.Buffer
	h := New(broken{}, strings.NewReader(""), &log)
	h.Tell(api.Message{Error: "boom"})
	if want := "dib-build: tell the host (error): gone\n"; log.String() != want {
		t.Errorf("logged %q, want %q", log.String(), want)
	}
}
