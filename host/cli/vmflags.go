package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/pflag"

	"github.com/dibvm/dibvm/host/agentbin"
	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/gateway"
	"github.com/dibvm/dibvm/host/libvirt"
	"github.com/dibvm/dibvm/host/machine"
	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/vmimage"
)

// vmFlags are the flags of every command that boots the helper VM.
type vmFlags struct {
	// arch is the helper VM's architecture as GOARCH names it; empty is
	// the host's. run takes it from --arch, create from the image's -a.
	arch        string
	backend     string
	connect     string
	accel       string
	memory      int
	cpus        int
	cpuModel    string
	network     string
	allowNet    []string // nil unless given: then DIBVM_ALLOW_NET counts
	allowOnly   []string // nil unless given: then DIBVM_ALLOW_ONLY counts
	mirror      string
	helperTools []string // nil unless given: then DIBVM_HELPER_TOOLS counts
	bootTimeout time.Duration
	// notices, when set, takes dibvm's notes on the helper VM instead
	// of stderr.
	notices io.Writer
	// shared, when set, is where the appliance's base is looked for
	// before it is built, and sent once built (--cache-from, --cache-to).
	shared       vmimage.Shared
	sharedMaxAge time.Duration
}

func (f *vmFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.backend, "backend", envOr("DIBVM_BACKEND", machine.BackendQEMU), "what runs the helper VM: qemu (dibvm starts QEMU itself) or libvirt (a transient domain of the libvirt daemon at --connect) (env DIBVM_BACKEND)")
	fs.StringVar(&f.connect, "connect", envOr("DIBVM_LIBVIRT_URI", ""), "libvirt URI for --backend libvirt: qemu:///session (your own daemon, the default), qemu:///system (the host's, root's default) or qemu+ssh://[USER@]HOST[:PORT]/session (that user's on another host) (env DIBVM_LIBVIRT_URI)")
	fs.StringVar(&f.accel, "accel", envOr("DIBVM_ACCEL", "auto"), "accelerator: auto, kvm, hvf or tcg (env DIBVM_ACCEL)")
	fs.IntVar(&f.memory, "memory", 2048, "helper VM memory in MiB")
	fs.IntVar(&f.cpus, "cpus", min(runtime.NumCPU(), 4), "helper VM CPUs")
	fs.StringVar(&f.cpuModel, "cpu-model", envOr("DIBVM_CPU_MODEL", "auto"), "helper VM CPU under TCG: auto (an x86-64-v2 Nehalem for an amd64 helper, max for arm64), max, or any model that qemu-system-* -cpu help lists; give max for images whose binaries need x86-64-v3 (RHEL 10 and its rebuilds) (env DIBVM_CPU_MODEL)")
	fs.StringVar(&f.network, "network", "nat", "helper VM network: nat or none")
	fs.StringArrayVar(&f.allowNet, "allow-net", nil, "let the helper VM reach `DEST` (HOST[:PORT], IP[:PORT] or CIDR) even if it is local to the host, e.g. apt-cacher-ng at 127.0.0.1:3142; repeatable, comma-separated (env DIBVM_ALLOW_NET)")
	fs.StringArrayVar(&f.allowOnly, "allow-only", nil, "let the helper VM reach only `DEST` (HOST[:PORT], IP[:PORT] or CIDR) and what --allow-net opens; repeatable, comma-separated (env DIBVM_ALLOW_ONLY)")
	f.registerMirror(fs)
	f.registerHelperTools(fs)
	fs.DurationVar(&f.bootTimeout, "boot-timeout", 3*time.Minute, "how long the helper VM may take to boot under TCG")
}

func (f *vmFlags) registerMirror(fs *pflag.FlagSet) {
	fs.StringVar(&f.mirror, "mirror", envOr("DIBVM_MIRROR", ""), "Debian mirror for the helper appliance (env DIBVM_MIRROR; default "+"http://deb.debian.org/debian)")
}

// check says everything wrong with the VM flags, as a usageError.
func (f *vmFlags) check() error {
	var p problems
	f.checkInto(&p)
	return p.err()
}

func (f *vmFlags) checkInto(p *problems) {
	if arch, err := f.guestArch(); err != nil {
		p.addErr(err)
	} else if f.backend == machine.BackendLibvirt {
		// The daemon's capabilities decide (see machine.Start).
		if err := qemu.CheckAccelName(f.accel); err != nil {
			p.addErr(err)
		}
	} else if _, err := qemuHost().Accelerators(f.accel, arch); err != nil {
		p.addErr(err)
	}
	switch f.backend {
	case machine.BackendQEMU:
		if f.connect != "" && os.Getenv("DIBVM_LIBVIRT_URI") != f.connect {
			p.add("--connect %s: a libvirt URI needs --backend libvirt", f.connect)
		}
	case machine.BackendLibvirt:
		if f.connect != "" {
			if err := libvirt.CheckURI(f.connect); err != nil {
				p.addErr(err)
			}
		}
	default:
		p.add("--backend %q (or DIBVM_BACKEND): use qemu or libvirt", f.backend)
	}
	p.addErr(f.checkMirror())
	p.addErr(f.checkHelperTools())
	if f.network != "nat" && f.network != "none" {
		p.add("--network %q: use nat or none", f.network)
	}
	if _, err := f.egressPolicy(); err != nil {
		p.addErr(err)
	}
	// A remote daemon's host has its own memory and CPUs.
	remote := f.backend == machine.BackendLibvirt && libvirt.IsRemote(f.libvirtURI())
	mem := hostMemoryMiB()
	if remote {
		mem = 0
	}
	switch {
	case f.memory < 256:
		p.add("--memory %d: the helper VM needs at least 256 MiB", f.memory)
	case mem > 0 && int64(f.memory) > mem:
		p.add("--memory %d: more MiB than this host has (%d MiB)", f.memory, mem)
	}
	switch n := runtime.NumCPU(); {
	case f.cpus < 1:
		p.add("--cpus %d: must be at least 1", f.cpus)
	case f.cpus > n && !remote:
		p.add("--cpus %d: this host has %d CPUs, and more virtual CPUs than that only slow the guest down", f.cpus, n)
	}
	if arch, err := f.guestArch(); err == nil {
		if err := qemuHost().CheckCPUModel(f.cpuModel, arch); err != nil {
			p.add("--cpu-model %s (or DIBVM_CPU_MODEL): %v", f.cpuModel, err)
		}
	}
	if f.bootTimeout <= 0 {
		p.add("--boot-timeout %s: give how long the helper VM may take to boot, such as 3m", f.bootTimeout)
	}
}

// libvirtURI is the libvirt daemon --backend libvirt uses.
func (f *vmFlags) libvirtURI() string {
	if f.connect != "" {
		return f.connect
	}
	return libvirt.DefaultURI()
}

// egressPolicy is what --allow-net and --allow-only, or where a flag is
// not given its environment variable, let the guest reach.
func (f *vmFlags) egressPolicy() (egress.Policy, error) {
	var pol egress.Policy
	var err error
	if pol.AllowNet, err = rulesOf("--allow-net", f.allowNet, "DIBVM_ALLOW_NET"); err != nil {
		return pol, err
	}
	if pol.AllowOnly, err = rulesOf("--allow-only", f.allowOnly, "DIBVM_ALLOW_ONLY"); err != nil {
		return pol, err
	}
	return pol, nil
}

// rulesOf parses a flag's values, or the environment variable's when the
// flag was not given; an error names the one that was read.
func rulesOf(flag string, values []string, env string) ([]egress.Rule, error) {
	if values == nil {
		return egress.ParseRules(env, os.Getenv(env))
	}
	return egress.ParseRules(flag, values...)
}

// guestArch is the helper VM's architecture, as GOARCH (and Debian) name
// it; --arch takes uname -m's names too.
func (f *vmFlags) guestArch() (string, error) {
	if a, ok := goArch(f.arch); ok {
		return a, nil
	}
	return "", fmt.Errorf("--arch %s: the helper VM can be amd64 (x86_64) or arm64 (aarch64)", f.arch)
}

// goArch reads an --arch value as GOARCH names it: the host's when
// empty, and uname -m's names too.
func goArch(a string) (string, bool) {
	switch a {
	case "":
		return runtime.GOARCH, true
	case "amd64", "x86_64":
		return "amd64", true
	case "arm64", "aarch64":
		return "arm64", true
	}
	return "", false
}

func (f *vmFlags) registerArch(fs *pflag.FlagSet) {
	fs.StringVar(&f.arch, "arch", "", "architecture of the helper VM: amd64 (x86_64) or arm64 (aarch64); one not the host's runs under TCG (default the host's)")
}

// applianceCache opens the cache with the spec and agent for the helper
// VM's architecture.
func (f *vmFlags) applianceCache() (*vmimage.Cache, vmimage.Spec, vmimage.Agent, error) {
	dir, err := cacheDir()
	if err != nil {
		return nil, vmimage.Spec{}, vmimage.Agent{}, err
	}
	arch, err := f.guestArch()
	if err != nil {
		return nil, vmimage.Spec{}, vmimage.Agent{}, err
	}
	if err := f.checkMirror(); err != nil {
		return nil, vmimage.Spec{}, vmimage.Agent{}, err
	}
	spec, err := vmimage.DefaultSpec(f.mirror, arch)
	if err != nil {
		return nil, vmimage.Spec{}, vmimage.Agent{}, err
	}
	agent, err := agentbin.Load(arch)
	if err != nil {
		return nil, vmimage.Spec{}, vmimage.Agent{}, err
	}
	return &vmimage.Cache{Dir: dir, Log: f.noticesOut(), Shared: f.shared, SharedMaxAge: f.sharedMaxAge}, spec, agent, nil
}

// start boots the helper VM, building the appliance first if need be.
func (f *vmFlags) start(ctx context.Context) (*machine.Machine, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	opts, err := f.machineOptions(ctx, f.helperToolNames())
	if err != nil {
		return nil, err
	}
	return machine.Start(ctx, opts)
}

// machineOptions makes sure the appliance, with the tool layers named
// tools, is cached and returns the VM settings of the flags.
func (f *vmFlags) machineOptions(ctx context.Context, tools []string) (machine.Options, error) {
	policy, err := f.egressPolicy()
	if err != nil {
		return machine.Options{}, err
	}
	arch, err := f.guestArch()
	if err != nil {
		return machine.Options{}, err
	}
	if f.backend == machine.BackendLibvirt {
		// Say now, not after building the appliance, that the daemon
		// cannot be reached.
		if err := libvirt.Probe(f.libvirtURI(), libvirtSession()); err != nil {
			return machine.Options{}, err
		}
	}
	layers, err := vmimage.Layers(tools)
	if err != nil {
		return machine.Options{}, fmt.Errorf("helper tools: %w", err)
	}
	cache, spec, agent, err := f.applianceCache()
	if err != nil {
		return machine.Options{}, err
	}
	app, err := cache.Ensure(ctx, spec, agent, layers...)
	if err != nil {
		return machine.Options{}, fmt.Errorf("helper appliance: %w", err)
	}
	return machine.Options{
		Backend: f.backend, LibvirtURI: f.libvirtURI(),
		QEMU: qemuHost(), Libvirt: libvirtSession(), RunDir: runtimeDir(),
		Arch: arch, Accel: f.accel, Memory: f.memory, CPUs: f.cpus, CPUModel: f.cpuModel, Network: f.network == "nat",
		// The guest's way out, wired here: the VM layer knows it only
		// as a host service.
		Service:           &gateway.Proxy{Policy: policy, Notices: f.noticesOut()},
		Appliance:         app,
		BootTimeout:       f.bootTimeout,
		HypervisorTimeout: 15 * time.Second,
		AccelMemo:         envOr("DIBVM_ACCEL_MEMO", filepath.Join(cache.Dir, "accel-memo.json")),
		Notices:           f.noticesOut(),
	}, nil
}

// noticesOut is where dibvm's notes on the helper VM go: stderr, unless
// a build shows its progress elsewhere.
func (f *vmFlags) noticesOut() io.Writer {
	if f.notices != nil {
		return f.notices
	}
	return os.Stderr
}
