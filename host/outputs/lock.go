package outputs

import (
	"fmt"
	"io"
	"os"

	"github.com/dibvm/dibvm/guestagent/api"
)

// stageLock stages the lock file, IMAGE.lock, made by o.Lock of the
// package list the guest put on the output disk, with its SHA-256: none
// for an image with no package database.
func stageLock(o Options, disk string, r *api.Result) (*stagedFile, error) {
	if o.Lock == nil || r.PackagesSize == 0 {
		return nil, nil
	}
	src, err := os.Open(disk)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	list, err := io.ReadAll(io.NewSectionReader(src, r.PackagesOffset, min(r.PackagesSize, api.MaxPackageList)))
	if err != nil {
		return nil, fmt.Errorf("read the image's package list: %w", err)
	}
	installed, err := api.ParsePackages(list)
	if err != nil {
		return nil, fmt.Errorf("the helper VM's list of the image's packages: %w", err)
	}
	lock, err := o.Lock(installed)
	if err != nil {
		return nil, err
	}
	s, err := stage(o.Output+LockSuffix, func(f *os.File) error {
		_, err := f.Write(lock)
		return err
	})
	if err != nil {
		return nil, err
	}
	// No checksum file, as it is no image; its SHA-256 is reported.
	s.lock = true
	if _, err := stageChecksums([]*stagedFile{s}, nil); err != nil {
		os.Remove(s.tmp)
		return nil, err
	}
	return s, nil
}

// WriteFile writes data to final beside the outputs, as it writes them:
// staged, then renamed into place, an existing file moved aside.
func WriteFile(final string, data []byte) (Written, error) {
	s, err := stage(final, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
	if err != nil {
		return Written{}, err
	}
	defer os.Remove(s.tmp)
	if _, err := stageChecksums([]*stagedFile{s}, nil); err != nil {
		return Written{}, err
	}
	if err := s.commit(); err != nil {
		return Written{}, err
	}
	return Written{Path: s.final, Size: s.size, SHA256: s.sums["sha256"]}, nil
}
