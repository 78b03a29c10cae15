package api

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// FuzzReadMessage feeds the host's reader of the control stream what a
// hostile guest may write there. Whatever the bytes, ReadMessage must not
// panic, must read no further than one frame's bound, must allocate in
// proportion to that bound and never to what a header claims, and must
// return exactly one of: a message of exactly one kind, io.EOF, or a
// *ProtocolError. A message it returns must survive WriteMessage and
// read back the same, so that reader and writer agree on what a message is.
func FuzzReadMessage(f *testing.F) {
	for _, m := range []Message{
		{Break: &Break{Point: "before-install", Chroot: true}},
		{Result: &Result{ImageSize: 1 << 30, TarOffset: 1 << 30, TarSize: 10240, ManifestsOffset: 2 << 30, ManifestsSize: 512}},
		{Failure: &Failure{Phase: "install.d", Script: "50-x", Status: 3, Signal: "SIGKILL", Tail: []string{"a", "b", ""}}},
		{Error: "mount the scratch disk: no such device"},
		{Checkpoint: &Checkpoint{Phase: "install.d", Hook: "10-x", Suites: []Suite{{Name: "bookworm", Date: "Sat, 10 May 2025 09:00:00 UTC"}}}},
		{Hook: &Hook{Phase: "install.d", Script: "01-package-installs", Done: true}},
		{Step: &Step{Name: StepImage}},
	} {
		var buf bytes.Buffer
		if err := WriteMessage(&buf, m); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
		// Two frames in a row, and a frame cut short.
		f.Add(append(bytes.Clone(buf.Bytes()), buf.Bytes()...))
		f.Add(buf.Bytes()[:buf.Len()-1])
	}
	for _, b := range [][]byte{
		nil,
		[]byte("dib"),
		[]byte("dibvm-break: {\"point\":\"before-install\"}\n"),
		append([]byte(Magic), 0xff, 0xff, 0xff, 0xff),
		append([]byte(Magic), 0, 1, 0, 0),
		frame(`{}`),
		frame(`null`),
		frame(`dibvm`),
		frame(`{"shell":"/bin/sh"}`),
		frame(`{"error":"x"} {"error":"y"}`),
		frame(`{"error":"x","break":{"point":"after-install"}}`),
		frame(`{"result":{"image_size":"big"}}`),
		frame(`{"ERROR":"case","error":""}`),
		frame(`{"checkpoint":{"phase":"root.d","suites":[]}}`),
		frame(`{"failure":{"phase":"x","script":"y","status":-1,"tail":null}}`),
		frame(`{"error":"\u2028<\ud800>\u00e9"}`),
		frame("{\"error\":\"\xff\xfe\"}"),
		frame(`{"hook":{"phase":"install.d","script":"x"},"hook":null}`),
		frame(`{"step":{"name":"` + strings.Repeat("<", 1000) + `"}}`),
		// Within the bound as read, beyond it as WriteMessage would
		// write them: json.Marshal escapes <, > and &, U+2028 and U+2029
		// as six bytes each, and writes a bad byte as U+FFFD, three.
		frame(`{"error":"` + strings.Repeat("<", 11000) + `"}`),
		frame(`{"error":"` + strings.Repeat("\u2028", 11000) + `"}`),
		frame(`{"error":"` + strings.Repeat("\xff", 22000) + `"}`),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &countingReader{r: bytes.NewReader(in)}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m, err := ReadMessage(r)
		runtime.ReadMemStats(&after)
		if r.n > 8+MaxMessage {
			t.Fatalf("read %d bytes for one frame, more than its bound %d", r.n, 8+MaxMessage)
		}
		// Decoding JSON allocates a few times its size; a reader that
		// trusted a header's length would allocate up to 4 GiB.
		if got := after.TotalAlloc - before.TotalAlloc; got > 32*(8+MaxMessage) {
			t.Fatalf("allocated %d bytes reading one frame of at most %d", got, 8+MaxMessage)
		}
		var pe *ProtocolError
		switch {
		case err == io.EOF:
			if len(in) != 0 {
				t.Fatalf("io.EOF from a stream of %d bytes", len(in))
			}
			return
		case errors.As(err, &pe):
			if m.Kind() != "empty message" {
				t.Fatalf("a protocol error (%v) came with a %s", err, m.Kind())
			}
			return
		case err != nil:
			t.Fatalf("an error that is neither io.EOF nor a *ProtocolError: %T %v", err, err)
		}
		if want := 8 + int(binary.BigEndian.Uint32(in[4:8])); r.n != want {
			t.Fatalf("read %d bytes for a frame of %d", r.n, want)
		}
		if k := m.kinds(); len(k) != 1 {
			t.Fatalf("returned a message of %d kinds %v", len(k), k)
		}
		var buf bytes.Buffer
		if err := WriteMessage(&buf, m); err != nil {
			t.Fatalf("a message read cannot be written back: %v", err)
		}
		again, err := ReadMessage(&buf)
		if err != nil {
			t.Fatalf("a message written back does not read: %v", err)
		}
		// Compared by their encodings: an empty list and none are the
		// same message (omitempty writes neither).
		js1, _ := json.Marshal(m)
		js2, _ := json.Marshal(again)
		if !bytes.Equal(js1, js2) {
			t.Fatalf("read back differently:\n%s\n%s", js1, js2)
		}
	})
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
