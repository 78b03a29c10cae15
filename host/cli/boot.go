package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/imageboot"
	"github.com/dibvm/dibvm/host/libvirt"
	"github.com/dibvm/dibvm/host/machine"
	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/host/termsafe"
)

// boot is dibvm boot: its flags, and the image's VM as they describe it.
type boot struct {
	o                                      imageboot.Options
	arch, user, identity, backend, connect string
	vf                                     vmFlags // --allow-net and --allow-only alone
	wait                                   time.Duration
	// conn is the libvirt daemon of --backend libvirt, once connected.
	conn *libvirt.Conn
}

func bootCommand() *cobra.Command {
	b := &boot{}
	cmd := &cobra.Command{
		Use:   "boot [flags] IMAGE [-- COMMAND [ARG...]]",
		Short: "Boot a built image under QEMU, its serial console on the terminal, or run a command in it over SSH",
		Long: `Boot a disk image dibvm (or DIB) built, under QEMU: UEFI when it has an
EFI system partition (firmware found on the host), else BIOS; the host's
hypervisor when it works, else single-threaded TCG (multi-threaded
through libvirt). Writes go to a throwaway overlay unless --persist.

Without COMMAND, the serial console is on the terminal: Ctrl-a x stops
the VM, Ctrl-a c is QEMU's monitor. With -- COMMAND, dibvm logs in over
SSH with the host's OpenSSH client (--ssh-user, -i), runs COMMAND, powers
the VM off and exits with COMMAND's status: a smoke test for CI.

An image built from elements you do not trust is no more trusted booted.
--network says what it reaches and what reaches it:
  proxy       (the default with --backend qemu) nothing but dibvm's egress
              proxy, at 10.0.2.100:3128, under the policy builds have:
              not the host's own services, and --allow-net and
              --allow-only (DIBVM_ALLOW_NET, DIBVM_ALLOW_ONLY) open and
              restrict as for create. Software in the image reaches the
              outside only through that HTTP proxy
              (http_proxy=http://10.0.2.100:3128); direct connections go
              nowhere. In: the --ssh port.
  nat         QEMU's user network, open: whatever the host reaches, and
              the host's own loopback services as 10.0.2.2. In: the
              --ssh port. Only for an image you trust.
  restricted  (the default with --backend libvirt) nothing out. In: the
              --ssh port.
  none        no network interface.

With --backend libvirt the VM is a transient domain of a libvirt daemon
on this host (virsh list shows it while it runs), gone when dibvm exits;
Ctrl-] leaves its console and stops it. Its networks are the same but for
proxy, which libvirt's QEMU sandbox cannot run.`,
		Example: `  dibvm boot out/image.qcow2
  dibvm boot --ssh 2222 out/image.qcow2          # then: ssh -p 2222 devuser@127.0.0.1
  dibvm boot -i ~/.ssh/id_ed25519 out/image.qcow2 -- systemctl is-system-running --wait`,
		Args: atLeastOne("the IMAGE to boot"),
		RunE: b.run,
	}
	b.register(cmd.Flags())
	return cmd
}

func (b *boot) register(f *pflag.FlagSet) {
	o := &b.o
	f.BoolVar(&o.Persist, "persist", false, "write to the image itself, rather than to a throwaway overlay")
	f.IntVar(&o.SSHPort, "ssh", 0, "forward the host's 127.0.0.1:PORT to the guest's SSH port (-- COMMAND picks a free one)")
	f.IntVar(&o.Memory, "memory", 1024, "VM memory in MiB")
	f.IntVar(&o.CPUs, "cpus", 2, "VM CPUs")
	f.StringVar(&o.Accel, "accel", envOr("DIBVM_ACCEL", "auto"), "accelerator: auto, kvm, hvf or tcg (env DIBVM_ACCEL)")
	f.StringVar(&b.arch, "arch", "", "architecture of the image: amd64 (x86_64) or arm64 (aarch64) (default the host's)")
	f.StringVar(&o.Firmware, "firmware", "auto", "auto (UEFI when the image has an EFI system partition, and always for arm64), bios or uefi")
	f.StringVar(&o.Network, "network", "", "proxy (only dibvm's egress proxy at 10.0.2.100:3128, under --allow-net and --allow-only; the default with --backend qemu), nat (QEMU's open user network: what the host reaches, the host's own loopback as 10.0.2.2), restricted (nothing out; the default with --backend libvirt) or none (no NIC); --ssh reaches in on all but none")
	f.StringArrayVar(&b.vf.allowNet, "allow-net", nil, "with --network proxy, let the image reach `DEST` (HOST[:PORT], IP[:PORT] or CIDR) even if it is local to the host, as for create; repeatable, comma-separated (env DIBVM_ALLOW_NET)")
	f.StringArrayVar(&b.vf.allowOnly, "allow-only", nil, "with --network proxy, let the image reach only `DEST` (HOST[:PORT], IP[:PORT] or CIDR) and what --allow-net opens, as for create; repeatable, comma-separated (env DIBVM_ALLOW_ONLY)")
	f.StringVar(&b.user, "ssh-user", envOr("DIB_DEV_USER_USERNAME", "devuser"), "user -- COMMAND logs in as (default $DIB_DEV_USER_USERNAME, else devuser, the devuser element's)")
	f.StringVarP(&b.identity, "identity", "i", "", "private key -- COMMAND logs in with (default: ssh's own choice, its agent and config)")
	f.DurationVar(&b.wait, "boot-timeout", 10*time.Minute, "how long -- COMMAND waits for the first SSH login")
	f.StringVar(&b.backend, "backend", envOr("DIBVM_BACKEND", machine.BackendQEMU), "what runs the VM: qemu (dibvm starts QEMU itself) or libvirt (a transient domain of the libvirt daemon at --connect) (env DIBVM_BACKEND)")
	f.StringVar(&b.connect, "connect", envOr("DIBVM_LIBVIRT_URI", ""), "libvirt URI for --backend libvirt: qemu:///session (your own daemon, the default) or qemu:///system (the host's, root's default) (env DIBVM_LIBVIRT_URI)")
}

// run boots the image: its console on the terminal, or -- COMMAND run
// in it over SSH.
func (b *boot) run(cmd *cobra.Command, args []string) error {
	image, command := args[0], args[1:]
	b.o.Image = image
	if n := cmd.ArgsLenAtDash(); n == 0 || n > 1 || (n < 0 && len(args) > 1) {
		return usagef("give one IMAGE, then -- and the command: %s", cmd.UseLine())
	}
	if err := b.check(cmd, image); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	disk, err := imageboot.Inspect(ctx, image)
	if err != nil {
		return err
	}
	err = b.start()
	if b.conn != nil {
		defer b.conn.Close()
	}
	if err != nil {
		return err
	}
	if len(command) > 0 {
		stdout, stderr, flush := commandOutputs(os.Stdout, os.Stderr, term.IsTerminal(int(os.Stdout.Fd())))
		defer flush()
		status, err := imageboot.RunCommand(ctx, b.o, disk, imageboot.Login{User: b.user, Identity: b.identity, Wait: b.wait}, command, stdout, stderr)
		if err != nil {
			return err
		}
		return exitCode(status)
	}
	if b.conn != nil {
		return bootDomain(ctx, b.o, disk, image, b.conn.URI)
	}
	return bootHere(ctx, b.o, disk, image)
}

// check says everything wrong with the flags and the image, as a
// usageError.
func (b *boot) check(cmd *cobra.Command, image string) error {
	var p problems
	o := &b.o
	var ok bool
	if o.Arch, ok = goArch(b.arch); !ok {
		p.add("--arch %s: give amd64 (x86_64) or arm64 (aarch64)", b.arch)
	}
	b.checkNetwork(cmd, &p)
	b.checkBackend(cmd, &p)
	if o.SSHPort < 0 || o.SSHPort > 65535 {
		p.add("--ssh %d: give a TCP port, 1 to 65535", o.SSHPort)
	}
	if o.Memory < 128 {
		p.add("--memory %d: give at least 128 (MiB)", o.Memory)
	}
	if o.CPUs < 1 {
		p.add("--cpus %d: give at least 1", o.CPUs)
	}
	if b.wait <= 0 {
		p.add("--boot-timeout %s: give a duration such as 10m", b.wait)
	}
	if b.identity != "" {
		if _, err := os.Stat(b.identity); err != nil {
			p.add("-i %s: %v", b.identity, err)
		}
	}
	if fi, err := os.Stat(image); err != nil {
		p.add("IMAGE %s: %v", image, err)
	} else if !fi.Mode().IsRegular() {
		p.add("IMAGE %s: not a file", image)
	}
	return p.err()
}

// checkNetwork picks the network (proxy, or restricted through libvirt)
// and the egress policy of the proxy's.
func (b *boot) checkNetwork(cmd *cobra.Command, p *problems) {
	o := &b.o
	if o.Network == "" {
		o.Network = imageboot.NetworkProxy
		if b.backend == machine.BackendLibvirt {
			o.Network = imageboot.NetworkRestricted
		}
	}
	if !slices.Contains(imageboot.Networks, o.Network) {
		p.add("--network %s: give %s", o.Network, strings.Join(imageboot.Networks, ", "))
	}
	if b.backend == machine.BackendLibvirt && o.Network == imageboot.NetworkProxy {
		p.addErr(imageboot.ErrLibvirtProxy)
		return
	}
	if imageboot.UsesProxy(*o) {
		var err error
		if o.Egress, err = b.vf.egressPolicy(); err != nil {
			p.addErr(err)
		}
		// The proxy's notices are text already (egress shows the
		// guest's names through termsafe); an interactive boot adds the
		// carriage returns a terminal in raw mode needs.
		o.Notices = os.Stderr
		return
	}
	for _, flag := range []string{"allow-net", "allow-only"} {
		if cmd.Flags().Changed(flag) {
			p.add("--%s: only --network proxy has an egress policy to open or restrict; --network %s has none", flag, o.Network)
		}
	}
}

// checkBackend checks --backend and --connect.
func (b *boot) checkBackend(cmd *cobra.Command, p *problems) {
	switch b.backend {
	case machine.BackendQEMU:
		if cmd.Flags().Changed("connect") {
			p.add("--connect %s: a libvirt URI needs --backend libvirt", b.connect)
		}
	case machine.BackendLibvirt:
		if b.connect == "" {
			b.connect = libvirt.DefaultURI()
		}
		if err := imageboot.CheckURI(b.connect); err != nil {
			p.addErr(err)
		} else if b.o.Accel != "auto" {
			// The daemon's capabilities decide.
			if err := qemu.CheckAccelName(b.o.Accel); err != nil {
				p.addErr(err)
			}
		}
	default:
		p.add("--backend %q (or DIBVM_BACKEND): use qemu or libvirt", b.backend)
	}
}

// start readies the backend: it connects to libvirt's daemon for
// --backend libvirt, and picks the accelerator.
func (b *boot) start() error {
	o := &b.o
	o.QEMU = qemuHost()
	memo := os.Getenv("DIBVM_ACCEL_MEMO")
	if dir, err := cacheDir(); err == nil && memo == "" {
		memo = filepath.Join(dir, "accel-memo.json")
	}
	if b.backend != machine.BackendLibvirt {
		var err error
		o.Accel, err = machine.Accelerator(o.QEMU, o.Accel, o.Arch, memo, os.Stderr)
		return err
	}
	conn, err := libvirt.Connect(b.connect, libvirtSession())
	if err != nil {
		return err
	}
	b.conn, o.Backend = conn, conn
	accels, err := conn.Accelerators(o.Accel, o.Arch)
	if err != nil {
		return err
	}
	o.Accel = machine.FirstAccelerator(o.QEMU, accels, o.Arch, memo, os.Stderr)
	if o.Accel == "tcg" && o.CPUs > 1 {
		fmt.Fprintf(os.Stderr, "dibvm: libvirt runs TCG multi-threaded, under which a Linux guest now and then panics as it patches its own code; --cpus 1 avoids it\n")
	}
	return nil
}

// commandOutputs are where the output of -- COMMAND goes. It comes from
// an image dibvm does not trust. Its stderr (with ssh's own complaints)
// is text for people: it goes through termsafe. Its stdout is the
// command's data, which a script may pipe on (an archive, a file of the
// image): as ssh passes it, unchanged, unless it is going to the
// terminal, where it goes through termsafe too. (The serial console
// of an interactive boot is another matter: see bootHere.)
func commandOutputs(stdout, stderr io.Writer, stdoutTerminal bool) (io.Writer, io.Writer, func()) {
	errOut := termsafe.NewWriter(stderr)
	if !stdoutTerminal {
		return stdout, errOut, func() { errOut.Flush() }
	}
	out := termsafe.NewWriter(stdout)
	return out, errOut, func() { out.Flush(); errOut.Flush() }
}

// bootHere boots the image under QEMU, its serial console on the
// terminal. With the egress proxy, dibvm stays to serve it, QEMU its
// child; otherwise dibvm turns into QEMU: nothing of dibvm's is left to
// clean up. Either way the terminal is QEMU's: the console of the image
// passes raw, as a VM's console does, since the user asked for a
// session with the guest, whose login, shell and editors need the
// terminal's sequences. What dibvm prints of the guest itself (the
// console's end when no login comes, with -- COMMAND) goes through
// termsafe.
func bootHere(ctx context.Context, o imageboot.Options, disk imageboot.Disk, image string) error {
	if imageboot.UsesProxy(o) {
		// The banner's firmware: Command says it without the proxy.
		_, _, uefi, err := imageboot.Command(withoutNetwork(o), disk)
		if err != nil {
			return err
		}
		bootBanner(o, disk, image, uefi, "", "Ctrl-a x stops it")
		return imageboot.Interactive(ctx, o, disk)
	}
	binary, args, uefi, err := imageboot.Command(o, disk)
	if err != nil {
		return err
	}
	bootBanner(o, disk, image, uefi, "", "Ctrl-a x stops it")
	return syscall.Exec(binary, append([]string{binary}, args...), os.Environ())
}

// withoutNetwork is o with no NIC, for what does not depend on one.
func withoutNetwork(o imageboot.Options) imageboot.Options {
	o.Network, o.SSHPort = imageboot.NetworkNone, 0
	return o
}

// bootDomain boots the image as a domain of o.Backend, the libvirt
// daemon at uri, its console on the terminal (raw, so that Ctrl-C and
// the like reach the guest) until it powers off or Ctrl-] is typed.
func bootDomain(ctx context.Context, o imageboot.Options, disk imageboot.Disk, image, uri string) error {
	_, _, uefi, err := imageboot.Command(withoutNetwork(o), disk)
	if err != nil {
		return err
	}
	bootBanner(o, disk, image, uefi, uri, "Ctrl-] stops it")
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return err
		}
		defer term.Restore(fd, old)
	}
	return imageboot.Console(ctx, o, disk, os.Stdin, os.Stdout)
}

func bootBanner(o imageboot.Options, disk imageboot.Disk, image string, uefi bool, uri, stop string) {
	fw := "BIOS"
	if uefi {
		fw = "UEFI"
	}
	fmt.Fprintf(os.Stderr, "dibvm: booting %s (%s, %s, %s)", image, disk.Format, fw, strings.ToUpper(o.Accel))
	if uri != "" {
		fmt.Fprintf(os.Stderr, " on %s", uri)
	}
	switch o.Network {
	case imageboot.NetworkProxy:
		fmt.Fprintf(os.Stderr, "; it reaches out only through the egress proxy, http://%s", egress.GuestAddr)
	case imageboot.NetworkNAT:
		fmt.Fprint(os.Stderr, "; it reaches what this host reaches, this host's loopback as 10.0.2.2")
	case imageboot.NetworkRestricted:
		fmt.Fprint(os.Stderr, "; it reaches nothing out")
	}
	if o.SSHPort != 0 {
		fmt.Fprintf(os.Stderr, "; ssh -p %d USER@127.0.0.1", o.SSHPort)
	}
	if !o.Persist {
		fmt.Fprint(os.Stderr, "; its writes are thrown away (--persist keeps them)")
	}
	fmt.Fprintf(os.Stderr, ". %s.\n", stop)
}
