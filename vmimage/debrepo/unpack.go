package debrepo

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"os"

	"pault.ag/go/debian/deb"
)

// WalkData calls fn for each entry of the data archive of the .deb at
// path, in archive order. fn may read the entry's content from r.
// data.tar.xz, .zst and .gz are all handled.
func WalkData(path string, fn func(hdr *tar.Header, r io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	d, err := deb.Load(f, path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer d.Close()
	for {
		hdr, err := d.Data.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: data.tar: %w", path, err)
		}
		if err := fn(hdr, d.Data); err != nil {
			return fmt.Errorf("%s: %s: %w", path, hdr.Name, err)
		}
	}
}

func bufioReader(r io.Reader) io.Reader { return bufio.NewReaderSize(r, 1<<20) }
