package diskimage

import "testing"

// DIB's layouts name GPT types by sgdisk's codes, which sfdisk does not
// know: each is given as its GUID, and a GUID passes as it is.
func TestPartType(t *testing.T) {
	for _, c := range []struct{ label, typ, want string }{
		{"gpt", "EF00", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"},
		{"gpt", "ea00", "BC13C2FF-59E6-4262-A352-B275FD6F7172"},
		{"gpt", "8304", "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"},
		{"gpt", "", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"},
		{"gpt", "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"},
		{"mbr", "0x82", "82"},
		{"mbr", "", "83"},
	} {
		if got := partType(c.label, c.typ); got != c.want {
			t.Errorf("partType(%s, %q) = %s, want %s", c.label, c.typ, got, c.want)
		}
	}
}
