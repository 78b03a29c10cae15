package ocistandin

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func writeLayer(t *testing.T, files map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "layer.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// An image pushed to the stand-in comes back whole, by tag and by the
// digest Push returned; once tampered, its layer fails its digest.
func TestRegistryServesWhatWasPushedAndCanTamper(t *testing.T) {
	img, err := Image("amd64", writeLayer(t, map[string]string{"etc/os-release": "ID=fedora\n"}),
		writeLayer(t, map[string]string{"etc/yum.repos.d/standin.repo": "[standin]\n"}))
	if err != nil {
		t.Fatal(err)
	}
	r := Serve(t)
	digest, err := r.Push(context.Background(), "library/fedora", "41", img)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{r.Host + "/library/fedora:41", r.Host + "/library/fedora@" + digest} {
		ref, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(got); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
		cf, _ := got.ConfigFile()
		if cf.Architecture != "amd64" || strings.Join(cf.Config.Cmd, " ") != "/bin/sh" {
			t.Errorf("%s: config %+v", ref, cf.Config)
		}
		if ls, _ := got.Layers(); len(ls) != 2 {
			t.Errorf("%s: %d layers, want 2", ref, len(ls))
		}
	}
	if err := r.TamperLayers(img); err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(r.Host+"/library/fedora@"+digest, name.Insecure)
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err == nil {
		t.Error("a tampered layer passed validation")
	}
}
