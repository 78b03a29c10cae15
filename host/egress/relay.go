package egress

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dibvm/dibvm/host/shellquote"
	"github.com/gofrs/flock"
)

// RelayArg, as dibvm's first argument, runs the relay that QEMU starts for
// each guest connection: it joins its stdin and stdout to the proxy.
const RelayArg = "__dibvm-egress-relay"

// maxRelays bounds the relays of one proxy that run at once. QEMU starts
// one (a dibvm process of some megabytes) for each connection the guest
// opens, however many; the proxy closes those past maxConns at once, and
// their relays exit, but a guest that opens them faster than relays end
// is held here. Each relay holds one of maxRelays slot files locked (see
// relaySlots) while it lives, and one that finds none free exits at once:
// no process keeps count, and the kernel frees a dead relay's slot, even
// one killed by SIGKILL.
const maxRelays = 2 * maxConns

// relaySlots is the directory of the slot files of the proxy at socket.
func relaySlots(socket string) string { return socket + ".relays" }

// takeSlot locks a free slot file in dir, or fails when all are taken.
func takeSlot(dir string) (*flock.Flock, error) {
	start := os.Getpid() // relays start at different slots
	for i := range maxRelays {
		l := flock.New(filepath.Join(dir, strconv.Itoa((start+i)%maxRelays)))
		ok, err := l.TryLock()
		if err != nil {
			return nil, err
		}
		if ok {
			return l, nil
		}
	}
	return nil, fmt.Errorf("%d relays already run", maxRelays)
}

// Relay is the relay's main.
func Relay(socket string) int {
	if err := relay(socket, os.Stdin, os.Stdout); err != nil {
		// The relay's stderr is QEMU's: a log file in a build, but the
		// user's terminal, in raw mode, while an image boots with its
		// console there. No error of one connection is worth a line on
		// it; QEMU ignores the status.
		if fi, serr := os.Stderr.Stat(); serr == nil && fi.Mode()&os.ModeCharDevice == 0 {
			fmt.Fprintf(os.Stderr, "dibvm egress relay: %v\n", err)
		}
		return 1
	}
	return 0
}

// relay joins the guest's connection (in, out) to the proxy at socket
// until the proxy's side ends. It does not wait for the guest: a guest
// that holds its end open past the proxy's bounds, which closed the
// connection, would otherwise keep the relay alive as long as it likes.
// When the guest's side ends first, the proxy is told (a half-close) and
// still ends the connection.
func relay(socket string, in io.Reader, out io.Writer) error {
	slot, err := takeSlot(relaySlots(socket))
	if err != nil {
		return err
	}
	defer slot.Unlock()
	c, err := net.Dial("unix", socket)
	if err != nil {
		return err
	}
	defer c.Close()
	go func() { io.Copy(c, in); closeWrite(c) }()
	io.Copy(out, c)
	return nil
}

// GuestfwdRule is the QEMU -netdev user guestfwd value that starts relay
// (this program) for each connection to GuestAddr.
func GuestfwdRule(relay, socket string) string {
	cmd := shellquote.Quote(relay) + " " + RelayArg + " " + shellquote.Quote(socket)
	// QEMU's option syntax escapes a comma by doubling it.
	return "tcp:" + GuestAddr + "-cmd:" + strings.ReplaceAll(cmd, ",", ",,")
}
