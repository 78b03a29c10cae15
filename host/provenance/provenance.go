// Package provenance is the statement a build writes beside its
// outputs, IMAGE.provenance.json: an in-toto Statement (v1) whose
// predicate is SLSA Provenance (v1). Its subjects are the outputs, by
// SHA-256; its build definition says what went in: the elements, as one
// tree and each on its own, the settings that reached the hooks (a
// secret-shaped one's value withheld), the host files lent, the helper
// appliance and the lock file; its run details say which dibvm built it.
//
// See https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
// and https://slsa.dev/spec/v1.0/provenance.
package provenance

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/sha256sum"
)

// The statement's and its predicate's types, and what a dibvm build is.
const (
	StatementType = "https://in-toto.io/Statement/v1"
	PredicateType = "https://slsa.dev/provenance/v1"
	BuildType     = "https://github.com/dibvm/dibvm/docs/provenance.md#create-v1"
	BuilderID     = "https://github.com/dibvm/dibvm"
)

// Withheld stands for a secret-shaped setting's value.
const Withheld = "(withheld: secret-shaped)"

// A Statement is an in-toto Statement with SLSA provenance.
type Statement struct {
	Type          string     `json:"_type"`
	Subject       []Resource `json:"subject"`
	PredicateType string     `json:"predicateType"`
	Predicate     Predicate  `json:"predicate"`
}

// A Resource is a file by name and digest (in-toto's ResourceDescriptor).
type Resource struct {
	Name   string            `json:"name"`
	URI    string            `json:"uri,omitempty"`
	Digest map[string]string `json:"digest"`
}

// An Output is a file the build wrote, and whether it is its lock file.
type Output struct {
	Resource
	Lock bool
}

// Predicate is SLSA Provenance v1's.
type Predicate struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition is what the build was asked for, and what it used.
type BuildDefinition struct {
	BuildType            string     `json:"buildType"`
	ExternalParameters   Parameters `json:"externalParameters"`
	InternalParameters   *Internal  `json:"internalParameters,omitempty"`
	ResolvedDependencies []Resource `json:"resolvedDependencies"`
}

// Internal are what dibvm itself decided of the build.
type Internal struct {
	// NotReproducible names the parts of a reproducible build whose
	// bytes differ from build to build (an XFS filesystem, LVM
	// metadata), as the build said when it met them.
	NotReproducible []string `json:"notReproducible,omitempty"`
}

// Parameters are the build's own: what `dibvm create` was given.
type Parameters struct {
	Elements  []string `json:"elements"` // expanded, sorted
	ImageName string   `json:"imageName"`
	Types     []string `json:"types"`
	Arch      string   `json:"arch"`
	// Env are the settings that reached the hooks.
	Env             map[string]string `json:"env"`
	SourceDateEpoch *int64            `json:"sourceDateEpoch,omitempty"`
	Seed            string            `json:"seed,omitempty"`
	// The flags that shape the image beyond the settings (-p,
	// --image-size, ...), as dibvm rebuild gives them again.
	Packages        []string `json:"packages,omitempty"`
	ImageSizeGB     float64  `json:"imageSizeGB,omitempty"`
	ExtraSizeGB     float64  `json:"imageExtraSizeGB,omitempty"`
	RootFSType      string   `json:"rootFSType,omitempty"`
	RootLabel       string   `json:"rootLabel,omitempty"`
	JournalMiB      int      `json:"journalMiB,omitempty"`
	MkfsOptions     string   `json:"mkfsOptions,omitempty"`
	MaxOnlineResize int64    `json:"maxOnlineResize,omitempty"`
	QemuImgOptions  string   `json:"qemuImgOptions,omitempty"`
	DockerTarget    string   `json:"dockerTarget,omitempty"`
	Uncompressed    bool     `json:"uncompressed,omitempty"`
}

// RunDetails say who built it and when.
type RunDetails struct {
	Builder  Builder  `json:"builder"`
	Metadata Metadata `json:"metadata"`
}

// Builder is the dibvm that built it.
type Builder struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version"`
}

// Metadata are the build's times.
type Metadata struct {
	StartedOn  time.Time `json:"startedOn"`
	FinishedOn time.Time `json:"finishedOn"`
}

// A Build is what a statement is made of.
type Build struct {
	Spec *api.Spec
	// Secret reports whether a setting's value is to be withheld.
	Secret func(name, value string) bool
	// ElementsTar is the input disk's tar of the elements.
	ElementsTar []byte
	// HostFiles are the host files lent to the build, by the variable
	// that names each, with their content's digests.
	HostFiles map[string]string
	// Appliance are the helper appliance's files (its kernel and
	// initramfs) by name, with their digests.
	Appliance map[string]string
	// Dibvm is the running dibvm's version and commit.
	Version, Commit string
	// Seed is a reproducible build's seed.
	Seed string
	// NotReproducible are the parts of a reproducible build that are not.
	NotReproducible []string
	// What the outputs are made with beyond the spec (--qemu-img-options,
	// --docker-target, -u).
	QemuImgOptions, DockerTarget string
	Uncompressed                 bool
	// PackagesFrom is the lock file the build replayed (--packages-from)
	// and its SHA-256, if it replayed one.
	PackagesFrom, PackagesFromSHA256 string
	Started, Finished                time.Time
}

func internal(b Build) *Internal {
	if len(b.NotReproducible) == 0 {
		return nil
	}
	return &Internal{NotReproducible: b.NotReproducible}
}

// SignatureNamespace is the SSHSIG namespace of a statement's signature:
// ssh-keygen -Y verify -n dibvm-provenance checks it.
const SignatureNamespace = "dibvm-provenance"

// Make is the statement of b, whose outputs are written.
func Make(b Build, outputs []Output) (*Statement, error) {
	deps := []Resource{}
	tarDigest := sha256.Sum256(b.ElementsTar)
	deps = append(deps, Resource{Name: "elements", Digest: map[string]string{"sha256": hex.EncodeToString(tarDigest[:])}})
	each, err := elementDigests(b.ElementsTar)
	if err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(each)) {
		deps = append(deps, Resource{Name: "element:" + name, Digest: map[string]string{"sha256": each[name]}})
	}
	for _, name := range slices.Sorted(maps.Keys(b.HostFiles)) {
		deps = append(deps, Resource{Name: "host file:" + name, Digest: map[string]string{"sha256": b.HostFiles[name]}})
	}
	for _, name := range slices.Sorted(maps.Keys(b.Appliance)) {
		deps = append(deps, Resource{Name: "helper appliance:" + name, Digest: map[string]string{"sha256": b.Appliance[name]}})
	}
	if b.PackagesFrom != "" {
		deps = append(deps, Resource{Name: "packages-from", URI: b.PackagesFrom, Digest: map[string]string{"sha256": b.PackagesFromSHA256}})
	}
	var subjects []Resource
	for _, o := range outputs {
		if o.Lock {
			deps = append(deps, Resource{Name: "lock file", URI: o.Name, Digest: o.Digest})
		}
		subjects = append(subjects, o.Resource)
	}
	env := map[string]string{}
	for k, v := range b.Spec.Env {
		if b.Secret != nil && b.Secret(k, v) {
			v = Withheld
		}
		env[k] = v
	}
	return &Statement{
		Type: StatementType, Subject: subjects, PredicateType: PredicateType,
		Predicate: Predicate{
			BuildDefinition: BuildDefinition{
				BuildType: BuildType,
				ExternalParameters: Parameters{
					Elements: b.Spec.Elements, ImageName: b.Spec.ImageName, Types: b.Spec.Types, Arch: b.Spec.Arch,
					Env: env, SourceDateEpoch: b.Spec.SourceDateEpoch, Seed: b.Seed,
					Packages: b.Spec.Packages, ImageSizeGB: b.Spec.ImageSizeGB, ExtraSizeGB: b.Spec.ExtraSizeGB, RootFSType: b.Spec.RootFSType,
					RootLabel: b.Spec.RootLabel, JournalMiB: b.Spec.JournalMiB, MkfsOptions: b.Spec.MkfsOptions,
					MaxOnlineResize: b.Spec.MaxOnlineResize,
					QemuImgOptions:  b.QemuImgOptions, DockerTarget: b.DockerTarget, Uncompressed: b.Uncompressed,
				},
				ResolvedDependencies: deps,
				InternalParameters:   internal(b),
			},
			RunDetails: RunDetails{
				Builder:  Builder{ID: BuilderID, Version: map[string]string{"dibvm": b.Version, "commit": b.Commit}},
				Metadata: Metadata{StartedOn: b.Started.UTC().Truncate(time.Second), FinishedOn: b.Finished.UTC().Truncate(time.Second)},
			},
		},
	}, nil
}

// elementDigests are each element's files' digest: of its entries in
// the tar (api.ElementsDir/NAME/...), each by name, type, mode, link and
// content, in the tar's order, which is the name order.
func elementDigests(tarball []byte) (map[string]string, error) {
	hashes := map[string]io.Writer{}
	sums := map[string]func() []byte{}
	tr := tar.NewReader(bytes.NewReader(tarball))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("the elements tar: %w", err)
		}
		rest, ok := strings.CutPrefix(hdr.Name, api.ElementsDir+"/")
		if !ok {
			continue
		}
		name, path, _ := strings.Cut(rest, "/")
		if name == "" {
			continue
		}
		h, ok := hashes[name]
		if !ok {
			s := sha256.New()
			h, hashes[name], sums[name] = s, s, func() []byte { return s.Sum(nil) }
		}
		content := sha256.New()
		if _, err := io.Copy(content, tr); err != nil {
			return nil, err
		}
		fmt.Fprintf(h, "%s\x00%c %o %s\x00%x\n", strings.TrimSuffix(path, "/"), hdr.Typeflag, hdr.Mode, hdr.Linkname, content.Sum(nil))
	}
	out := map[string]string{}
	for name, sum := range sums {
		out[name] = hex.EncodeToString(sum())
	}
	return out, nil
}

// Marshal is the statement's file.
func (s *Statement) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	return append(b, '\n'), err
}

// Read reads the statement at path.
func Read(path string) (*Statement, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Statement
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Type != StatementType || s.PredicateType != PredicateType || s.Predicate.BuildDefinition.BuildType != BuildType {
		return nil, fmt.Errorf("%s is not a dibvm build's provenance statement (type %q, predicate %q)", path, s.Type, s.PredicateType)
	}
	return &s, nil
}

// A Mismatch is a subject whose file is not what the statement says.
type Mismatch struct {
	Name, Want, Got string // Got is "" for a file not there
}

// Check compares each subject with its file in dir, by SHA-256.
func (s *Statement) Check(dir string) ([]Mismatch, error) {
	if len(s.Subject) == 0 {
		return nil, errors.New("the statement names no output")
	}
	var out []Mismatch
	for _, sub := range s.Subject {
		if !filepath.IsLocal(sub.Name) || strings.ContainsRune(sub.Name, filepath.Separator) {
			return nil, fmt.Errorf("the statement names %q, which is not a file beside it", sub.Name)
		}
		got, _, err := sha256sum.File(filepath.Join(dir, sub.Name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if got != sub.Digest["sha256"] {
			out = append(out, Mismatch{Name: sub.Name, Want: sub.Digest["sha256"], Got: got})
		}
	}
	return out, nil
}
