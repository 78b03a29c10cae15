package api

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestMessagesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := []Message{
		{Break: &Break{Point: "before-install", Chroot: true}},
		{Failure: &Failure{Phase: "install.d", Script: "50-x", Status: 3, Tail: []string{"a", "b"}}},
		{Result: &Result{ImageSize: 1 << 20, TarOffset: 1 << 20, TarSize: 10240}},
		{Error: "mount the scratch disk: no such device"},
	}
	for _, m := range in {
		if err := WriteMessage(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range in {
		got, err := ReadMessage(&buf)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if got.Kind() != want.Kind() {
			t.Errorf("message %d is a %s, want %s", i, got.Kind(), want.Kind())
		}
	}
	if _, err := ReadMessage(&buf); err != io.EOF {
		t.Errorf("at the end: %v, want io.EOF", err)
	}
}

func frame(js string) []byte {
	b := []byte(Magic)
	b = binary.BigEndian.AppendUint32(b, uint32(len(js)))
	return append(b, js...)
}

// Whatever the stream holds, the reader returns a message or says what
// is wrong with the stream, and never reads past a frame's bound.
func TestReadMessageRefuses(t *testing.T) {
	huge := append([]byte(Magic), 0xff, 0xff, 0xff, 0xff)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"a hook's line", []byte("dibvm-break: {\"point\":\"before-install\"}\n"), "not the control magic"},
		{"a cut header", []byte("dib"), "inside a frame header"},
		{"a frame beyond the bound", huge, "more than the 65536"},
		{"a cut frame", frame(`{"error":"x"}`)[:12], "inside a 13-byte frame"},
		{"not JSON", frame(`dibvm`), "not a control message"},
		{"an unknown field", frame(`{"shell":"/bin/sh"}`), `unknown field "shell"`},
		{"two values", frame(`{"error":"x"} {"error":"y"}`), "more than one JSON value"},
		{"an empty message", frame(`{}`), "holds 0 kinds"},
		{"two kinds", frame(`{"error":"x","break":{"point":"after-install"}}`), "holds 2 kinds"},
		{"wrong types", frame(`{"result":{"image_size":"big"}}`), "not a control message"},
		{"longer as written", frame(`{"error":"` + strings.Repeat("<", 11000) + `"}`), "as the build writes it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadMessage(bytes.NewReader(tc.in))
			var pe *ProtocolError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want a protocol error saying %q", err, tc.want)
			}
		})
	}
}

func TestWriteMessageBound(t *testing.T) {
	m := Message{Error: strings.Repeat("x", MaxMessage)}
	if err := WriteMessage(io.Discard, m); err == nil {
		t.Error("a message beyond the bound was written")
	}
}
