// Package guestagent is the program that runs as PID 1 inside the helper
// VM. It brings the appliance up, reads the host's boot configuration from
// the read-only input disk and serves the host over SSH on a virtio-serial
// port until it is told to power off.
package guestagent

import (
	"fmt"
	"log"
	"os"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/reaper"
	"github.com/dibvm/dibvm/guestagent/sshd"
	"github.com/dibvm/dibvm/guestagent/sysinit"
	"github.com/dibvm/dibvm/guestagent/vport"
)

// Run boots the guest and serves the host. It returns only on failure;
// as PID 1 the caller must then power off, or the kernel panics.
func Run() error {
	log.SetFlags(0)
	log.SetPrefix(api.LogPrefix)
	os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
	start := time.Now()

	if err := sysinit.MountKernelFilesystems(); err != nil {
		return err
	}
	reaper.Start()
	if err := sysinit.LoadModules(api.ModulesFile); err != nil {
		// A missing filesystem module is not yet fatal: say so and go on,
		// so the host can still reach the agent and report it.
		log.Print(err)
	}
	cfg, err := readConfig()
	if err != nil {
		return err
	}
	if err := sysinit.ConfigureNetwork(cfg.Network); err != nil {
		return err
	}
	srv, err := newServer(cfg)
	if err != nil {
		return err
	}
	if n := cfg.Network; n != nil && n.Proxy != "" {
		for _, k := range []string{"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"} {
			srv.BaseEnv = append(srv.BaseEnv, k+"="+n.Proxy)
		}
		srv.BaseEnv = append(srv.BaseEnv, "no_proxy=localhost,127.0.0.1", "NO_PROXY=localhost,127.0.0.1",
			api.DebootstrapEnv+"="+api.DebootstrapURL, api.SourceCacheEnv+"="+api.SourceCacheURL)
		if n.Forwarded {
			srv.Forwardable = map[string]bool{n.ProxyAddr(): true}
		}
	}
	dev, err := vport.Find(api.PortName, 10*time.Second)
	if err != nil {
		return err
	}
	log.Printf("ready in %s", time.Since(start).Round(time.Millisecond))
	for {
		conn, err := vport.Open(dev)
		if err != nil {
			return fmt.Errorf("open %s: %w", dev, err)
		}
		if err := srv.Serve(conn); err != nil {
			log.Print(err)
		}
		conn.Close()
	}
}

func readConfig() (*api.Config, error) {
	dev, err := sysinit.FindDisk(api.InputSerial, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if err := sysinit.MountReadOnly(dev, api.InputDir, api.InputFSType); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(api.InputDir + "/" + api.ConfigFile)
	if err != nil {
		return nil, err
	}
	return api.ParseConfig(data)
}

func newServer(cfg *api.Config) (*sshd.Server, error) {
	hostKey, err := ssh.ParsePrivateKey([]byte(cfg.HostKey))
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	authorized, _, _, _, err := ssh.ParseAuthorizedKey([]byte(cfg.AuthorizedKey))
	if err != nil {
		return nil, fmt.Errorf("authorized key: %w", err)
	}
	srv := sshd.New(hostKey, authorized)
	srv.Poweroff = func() {
		// Let the reply reach the host before the machine goes.
		time.Sleep(50 * time.Millisecond)
		sysinit.Poweroff()
	}
	return srv, nil
}
