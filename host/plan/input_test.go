package plan

import (
	"strings"
	"testing"
)

// The input the elements make for the VM is bounded as written, whatever
// the elements' own size: a write past the bound fails and saying why.
func TestCappedBuffer(t *testing.T) {
	b := &cappedBuffer{max: 10}
	if _, err := b.Write([]byte("12345")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("123456")); err == nil || !strings.Contains(err.Error(), "fetch large data in a hook") {
		t.Errorf("a write past the bound: %v", err)
	}
	if b.buf.Len() != 5 {
		t.Errorf("holds %d bytes", b.buf.Len())
	}
}
