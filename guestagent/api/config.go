package api

import (
	"encoding/json"
	"fmt"
	"net/url"
)

// Config is what the host tells the agent at boot, as ConfigFile on the
// input disk; the agent reads it before anything else.
type Config struct {
	// AuthorizedKey is the host's public key for this boot, in
	// authorized_keys format. The agent accepts no other.
	AuthorizedKey string `json:"authorized_key"`
	// HostKey is the agent's private SSH host key for this boot, in PEM.
	// The host made it and checks for exactly its public half.
	HostKey string `json:"host_key"`
	// Network is nil when the guest has no network.
	Network *Network `json:"network,omitempty"`
}

// Network is how the guest reaches the outside: a static IPv4
// configuration matching QEMU's user networking, or, when Forwarded is
// set, no interface at all.
type Network struct {
	Address string `json:"address,omitempty"` // CIDR, e.g. 10.0.2.15/24
	Gateway string `json:"gateway,omitempty"`
	DNS     string `json:"dns,omitempty"`
	// Proxy is the HTTP proxy that is the guest's only way out; every
	// command gets it as http_proxy and https_proxy.
	Proxy string `json:"proxy,omitempty"`
	// Forwarded says the guest has no network interface: the agent puts
	// the proxy's address on loopback, listens there when the host asks
	// (SSH's tcpip-forward) and carries each connection to the host over
	// its own connection.
	Forwarded bool `json:"forwarded,omitempty"`
}

// ProxyAddr is the host:port of n's proxy, or "" without one.
func (n *Network) ProxyAddr() string {
	if n == nil {
		return ""
	}
	u, err := url.Parse(n.Proxy)
	if err != nil {
		return ""
	}
	return u.Host
}

// ParseConfig decodes a config and checks that its required fields are
// set.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	if c.AuthorizedKey == "" || c.HostKey == "" {
		return nil, fmt.Errorf("%s: authorized_key and host_key are required", ConfigFile)
	}
	return &c, nil
}
