package api

import (
	"encoding/json"
	"fmt"
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

// Network is a static IPv4 configuration matching QEMU's user networking.
type Network struct {
	Address string `json:"address"` // CIDR, e.g. 10.0.2.15/24
	Gateway string `json:"gateway"`
	DNS     string `json:"dns"`
	// Proxy is the HTTP proxy that is the guest's only way out; every
	// command gets it as http_proxy and https_proxy.
	Proxy string `json:"proxy,omitempty"`
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
