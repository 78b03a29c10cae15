package sysinit

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strings"

	"github.com/dibvm/dibvm/guestagent/modprobe"
)

// LoadModules loads the modules named in list (one a line) with their
// dependencies, concurrently, and makes the device nodes that load the
// others when first opened. The kernel asks the agent, as modprobe, for
// the rest when it needs them. A module the kernel has built in is fine.
func LoadModules(list string) error {
	f, err := os.Open(list)
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := readModuleList(f)
	if err != nil {
		return err
	}
	dir, err := modprobe.Dir()
	if err != nil {
		return err
	}
	ix, err := modprobe.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(ix.Load(names...), ix.MakeNodes("/dev"))
}

// readModuleList reads module names, one a line; blank lines and lines
// that start with # are none.
func readModuleList(r io.Reader) ([]string, error) {
	var names []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if n := strings.TrimSpace(sc.Text()); n != "" && !strings.HasPrefix(n, "#") {
			names = append(names, n)
		}
	}
	return names, sc.Err()
}
