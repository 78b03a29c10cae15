package dibbuild

import (
	"embed"
	"io/fs"
	"os"
	"path/filepath"
)

// dibLib is dibvm's stand-in for DIB's shell library, which hooks find
// at $_LIB (DIB's baremetal element sources $_LIB/img-functions): the
// functions elements call, written anew, not DIB's files.
//
//go:embed dib-lib
var dibLib embed.FS

// libDir is _LIB for the hooks.
var libDir = filepath.Join(root, "lib")

// installLib writes the library to libDir, afresh on a resumed build.
func installLib() error {
	if err := os.RemoveAll(libDir); err != nil {
		return err
	}
	return writeLib(libDir)
}

// writeLib writes the library into dir, which must not exist.
func writeLib(dir string) error {
	sub, err := fs.Sub(dibLib, "dib-lib")
	if err != nil {
		return err
	}
	return os.CopyFS(dir, sub)
}
