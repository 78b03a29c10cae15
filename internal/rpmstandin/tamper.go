package rpmstandin

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// TamperedCopy copies repo to dir and then changes one byte near the
// end of the named package's rpm, inside its payload: its size stays,
// its checksum no longer matches primary.xml, and its payload digest no
// longer matches its signed header. The metadata and its signature are
// the original's. A client that installs from the copy must refuse the
// package.
func TamperedCopy(repo *Repo, dir, name string) (*Repo, error) {
	rpm, ok := repo.RPMs[name]
	if !ok {
		return nil, fmt.Errorf("tamper with %s: the repository has no such package", name)
	}
	cp, err := copyRepo(repo, dir)
	if err != nil {
		return nil, err
	}
	target := filepath.Join(dir, mustRel(repo.Dir, rpm))
	data, err := os.ReadFile(target)
	if err != nil {
		return nil, err
	}
	data[len(data)-8] ^= 0xff
	if err := os.WriteFile(target, data, 0o644); err != nil {
		return nil, err
	}
	return cp, nil
}

// ForeignSignedCopy copies repo to dir with every rpm signed by other
// instead, indexed again and the metadata signed by key: the
// repository's metadata checks out against key, and its packages do
// not.
func ForeignSignedCopy(ctx context.Context, repo *Repo, dir string, key, other *Key) (*Repo, error) {
	cp, err := copyRepo(repo, dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, f := range cp.RPMs {
		files = append(files, f)
	}
	sort.Strings(files)
	del := exec.CommandContext(ctx, "rpmsign", append([]string{"--delsign"}, files...)...)
	if out, err := del.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("rpmsign --delsign: %w: %s", err, strings.TrimSpace(string(out)))
	}
	if err := other.signRPMs(files); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(dir, "repodata")); err != nil {
		return nil, err
	}
	if err := index(ctx, dir, key); err != nil {
		return nil, err
	}
	return cp, nil
}

// copyRepo copies repo's files to dir, which must not exist yet.
func copyRepo(repo *Repo, dir string) (*Repo, error) {
	err := filepath.WalkDir(repo.Dir, func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, mustRel(repo.Dir, file))
		if d.IsDir() {
			if file == repo.Dir {
				return os.Mkdir(dst, 0o755)
			}
			return os.MkdirAll(dst, 0o755)
		}
		return copyFile(file, dst)
	})
	if err != nil {
		return nil, fmt.Errorf("copy the repository %s: %w", repo.Dir, err)
	}
	cp := &Repo{Dir: dir, RPMs: map[string]string{}, PublicKey: filepath.Join(dir, mustRel(repo.Dir, repo.PublicKey))}
	for name, f := range repo.RPMs {
		cp.RPMs[name] = filepath.Join(dir, mustRel(repo.Dir, f))
	}
	return cp, nil
}

func mustRel(base, target string) string {
	rel, err := filepath.Rel(base, target)
	if err != nil {
		panic(err)
	}
	return rel
}
