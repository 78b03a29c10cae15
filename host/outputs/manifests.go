package outputs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Bounds on what the guest may hand over as manifests: they are a few
// lists and small records, and a guest must not fill the host's disk,
// nor its inode table or directory tree with empty files and folders.
const (
	MaxManifests       = 256 << 20 // bytes of files
	maxManifestEntries = 10000     // files, directories and skipped entries
	maxManifestDepth   = 8         // directories down to a file
)

// extractManifests unpacks the guest's tar of the image's manifests
// into dir. The guest is not trusted: only plain files and directories
// with local names are taken, with ordinary modes, and no more than
// the bounds above.
//
// The names are the guest's. They are printed nowhere but in errors:
// quoted with %q here, and wrapped in os errors that reach the user
// through cli.Main, which shows every error through termsafe.
func extractManifests(dir string, r io.Reader) error {
	tr := tar.NewReader(r)
	var total int64
	for entries := 1; ; entries++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the manifests: %w", err)
		}
		if entries > maxManifestEntries {
			return fmt.Errorf("the manifests hold more than %d entries", maxManifestEntries)
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if name == "." {
			continue
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("the manifests hold %q, which is not a path inside their directory", h.Name)
		}
		if depth := strings.Count(name, string(filepath.Separator)) + 1; depth > maxManifestDepth {
			return fmt.Errorf("the manifests hold %q, %d levels deep, more than %d", h.Name, depth, maxManifestDepth)
		}
		dst := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if total += h.Size; total > MaxManifests {
				return fmt.Errorf("the manifests are larger than %d MiB", MaxManifests>>20)
			}
			if err := writeManifest(dst, tr); err != nil {
				return err
			}
		default:
			// Links and devices have no place among manifests.
		}
	}
}

func writeManifest(dst string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	// O_EXCL: a name the tar repeats cannot write through anything.
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// stageManifests writes the manifests into a temporary directory beside
// final, committed with the other outputs.
func stageManifests(final, disk string, offset, length int64) (*stagedFile, error) {
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(final)+".partial-*")
	if err != nil {
		return nil, err
	}
	os.Chmod(tmp, 0o755)
	src, err := os.Open(disk)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	defer src.Close()
	if err := extractManifests(tmp, io.NewSectionReader(src, offset, length)); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("write %s: %w", final, err)
	}
	return &stagedFile{final: final, tmp: tmp}, nil
}
