package libvirt

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// dialSSH connects to the host of a qemu+ssh:// URI as OpenSSH's client
// would by default: as the URI's user (else the local one), with the keys
// of the user's ssh-agent and their unencrypted default keys (or the
// URI's keyfile=), trusting the host only if known_hosts (or the URI's
// known_hosts=) has its key. dibvm then reaches the daemon's socket, the
// agent's channel and the console through this one connection.
func dialSSH(u *url.URL, agentSock, home string) (*ssh.Client, error) {
	name := u.User.Username()
	if name == "" {
		cur, err := user.Current()
		if err != nil {
			return nil, err
		}
		name = cur.Username
	}
	port := u.Port()
	if port == "" {
		port = "22"
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	knownFiles := []string{filepath.Join(home, ".ssh", "known_hosts")}
	if f := u.Query().Get("known_hosts"); f != "" {
		knownFiles = []string{f}
	} else if _, err := os.Stat("/etc/ssh/ssh_known_hosts"); err == nil {
		knownFiles = append(knownFiles, "/etc/ssh/ssh_known_hosts")
	}
	var existing []string
	for _, f := range knownFiles {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		}
	}
	if len(existing) == 0 {
		return nil, fmt.Errorf("%s: no known_hosts file (%s) to check %s's key against: ssh to it once (ssh -p %s %s@%s) and accept its key", redact(u), strings.Join(knownFiles, ", "), addr, port, name, u.Hostname())
	}
	check, err := knownhosts.New(existing...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", redact(u), err)
	}
	auth, closeAgent := authMethods(u, home, agentSock)
	defer closeAgent()
	cfg := &ssh.ClientConfig{User: name, Auth: auth, HostKeyCallback: check, Timeout: 15 * time.Second}
	c, err := ssh.Dial("tcp", addr, cfg)
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) && len(ke.Want) > 0 {
		// The host offered a key of another type than the one known:
		// ask for the known types only, as OpenSSH does.
		for _, k := range ke.Want {
			cfg.HostKeyAlgorithms = append(cfg.HostKeyAlgorithms, algorithms(k.Key.Type())...)
		}
		c, err = ssh.Dial("tcp", addr, cfg)
	}
	if err == nil {
		return c, nil
	}
	switch {
	case errors.As(err, &ke) && len(ke.Want) == 0:
		return nil, fmt.Errorf("%s: %s is not in %s: check its key and add it (ssh -p %s %s@%s once)", redact(u), addr, strings.Join(existing, " or "), port, name, u.Hostname())
	case errors.As(err, &ke):
		return nil, fmt.Errorf("%s: %s's host key is not the one in %s:%d: it changed, or someone is in the way; do not go on until you know which", redact(u), addr, ke.Want[0].Filename, ke.Want[0].Line)
	case strings.Contains(err.Error(), "unable to authenticate"):
		return nil, fmt.Errorf("%s: %s did not accept any of your keys as %s: add one to your ssh-agent (ssh-add) or name it with ?keyfile=, and put its public half in the remote's ~/.ssh/authorized_keys", redact(u), addr, name)
	}
	return nil, fmt.Errorf("%s: ssh to %s: %w", redact(u), addr, err)
}

// algorithms are the host key algorithms for a key of type t.
func algorithms(t string) []string {
	if t == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{t}
}

// authMethods are the keys of the user's ssh-agent at agentSock, then the
// key file the URI names or the default ones that need no passphrase.
func authMethods(u *url.URL, home, agentSock string) ([]ssh.AuthMethod, func()) {
	var signers []ssh.Signer
	closeAgent := func() {}
	if sock := agentSock; sock != "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			if s, err := agent.NewClient(conn).Signers(); err == nil {
				signers = append(signers, s...)
			}
			closeAgent = func() { conn.Close() }
		}
	}
	files := []string{u.Query().Get("keyfile")}
	if files[0] == "" {
		files = nil
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			files = append(files, filepath.Join(home, ".ssh", n))
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if s, err := ssh.ParsePrivateKey(b); err == nil {
			signers = append(signers, s)
		}
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, closeAgent
}

// redact is the URI as errors show it: without a password.
func redact(u *url.URL) string {
	v := *u
	v.RawQuery = ""
	return v.Redacted()
}

// remoteSessionSocket finds the remote user's session daemon's socket as
// findSocket does here, asking the remote shell for its directories.
func remoteSessionSocket(c *ssh.Client, u *url.URL) (string, error) {
	if s := u.Query().Get("socket"); s != "" {
		return s, nil
	}
	sess, err := c.NewSession()
	if err != nil {
		return "", err
	}
	out, err := sess.Output(`printf '%s\n' "$XDG_RUNTIME_DIR" "$HOME"`)
	sess.Close()
	if err != nil {
		return "", fmt.Errorf("%s: ask the remote for its home: %w", redact(u), err)
	}
	runtimeDir, home, _ := strings.Cut(string(out), "\n")
	var tried []string
	for _, p := range sessionSockets(runtimeDir, strings.TrimSpace(home)) {
		if conn, err := c.Dial("unix", p); err == nil {
			conn.Close()
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("%s: no libvirt session daemon answers on the remote (tried %s): start one there (virtqemud --daemon, libvirtd --daemon, or systemctl --user start virtqemud.socket)", redact(u), strings.Join(tried, ", "))
}
