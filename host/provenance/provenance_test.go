package provenance

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
)

func elementsTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o755, Size: int64(len(files[n])), Typeflag: tar.TypeReg})
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	return b.Bytes()
}

// The statement names the outputs by digest and what went in: the
// elements as a tree and each alone (a change to one changes its digest
// only), the settings with a secret's value withheld, the host files,
// the helper appliance and the lock file.
func TestMake(t *testing.T) {
	epoch := int64(1700000000)
	spec := &api.Spec{ImageName: "img", Elements: []string{"a", "b"}, Arch: "amd64", Types: []string{"qcow2"},
		Env: map[string]string{"DIB_RELEASE": "bookworm", "DIB_DEV_USER_PASSWORD": "hunter2"}, SourceDateEpoch: &epoch}
	files := map[string]string{"hooks/install.d/10-a": "a", "elements/a/install.d/10-a": "a", "elements/b/element-deps": "a\n"}
	b := Build{Spec: spec, Secret: func(name, _ string) bool { return name == "DIB_DEV_USER_PASSWORD" },
		ElementsTar: elementsTar(t, files), HostFiles: map[string]string{"DIB_X": "11"}, Appliance: map[string]string{"initrd.img": "22"},
		Version: "0.2.0", Commit: "abc", Seed: "seed", Started: time.Unix(1, 0), Finished: time.Unix(2, 0)}
	outs := []Output{{Resource: Resource{Name: "img.qcow2", Digest: map[string]string{"sha256": "33"}}}, {Resource: Resource{Name: "img.lock", Digest: map[string]string{"sha256": "44"}}, Lock: true}}
	st, err := Make(b, outs)
	if err != nil {
		t.Fatal(err)
	}
	if st.Type != StatementType || st.PredicateType != PredicateType || !slices.EqualFunc(st.Subject, outs, func(a Resource, b Output) bool { return a.Name == b.Name }) {
		t.Errorf("statement %+v", st)
	}
	p := st.Predicate.BuildDefinition.ExternalParameters
	if p.Env["DIB_DEV_USER_PASSWORD"] != Withheld || p.Env["DIB_RELEASE"] != "bookworm" || *p.SourceDateEpoch != epoch || p.Seed != "seed" {
		t.Errorf("parameters %+v", p)
	}
	deps := map[string]string{}
	for _, d := range st.Predicate.BuildDefinition.ResolvedDependencies {
		deps[d.Name] = d.Digest["sha256"]
	}
	for _, name := range []string{"elements", "element:a", "element:b", "host file:DIB_X", "helper appliance:initrd.img", "lock file"} {
		if deps[name] == "" {
			t.Errorf("no %s among the dependencies %v", name, deps)
		}
	}
	files["elements/b/element-deps"] = "a\nc\n"
	b.ElementsTar = elementsTar(t, files)
	again, _ := Make(b, outs)
	for _, d := range again.Predicate.BuildDefinition.ResolvedDependencies {
		if changed := d.Digest["sha256"] != deps[d.Name]; changed != (d.Name == "elements" || d.Name == "element:b") {
			t.Errorf("a change to element b: %s changed %v", d.Name, changed)
		}
	}
	data, _ := st.Marshal()
	if bytes.Contains(data, []byte("hunter2")) {
		t.Error("the secret is in the statement")
	}
}

// Check finds what differs from the statement and what is not there.
func TestReadAndCheck(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "img.qcow2"), []byte("image"), 0o644)
	os.WriteFile(filepath.Join(dir, "img.tar"), []byte("tar"), 0o644)
	st, _ := Make(Build{Spec: &api.Spec{}}, []Output{
		{Resource: Resource{Name: "img.qcow2", Digest: map[string]string{"sha256": "6105d6cc76af400325e94d588ce511be5bfdbb73b437dc51eca43917d7a43e3d"}}},
		{Resource: Resource{Name: "img.tar", Digest: map[string]string{"sha256": "00"}}},
		{Resource: Resource{Name: "img.raw", Digest: map[string]string{"sha256": "11"}}},
	})
	data, _ := st.Marshal()
	path := filepath.Join(dir, "img.provenance.json")
	os.WriteFile(path, data, 0o644)
	back, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := back.Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "img.tar" || got[0].Got == "" || got[1].Name != "img.raw" || got[1].Got != "" {
		t.Errorf("mismatches %+v", got)
	}
	back.Subject = append(back.Subject, Resource{Name: "../etc/passwd"})
	if _, err := back.Check(dir); err == nil {
		t.Error("a subject outside the directory was checked")
	}
	os.WriteFile(path, []byte(`{"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://example.com/other"}`), 0o644)
	if _, err := Read(path); err == nil {
		t.Error("another predicate was read as dibvm's")
	}
}
