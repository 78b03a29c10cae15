// Package bootconfig is what the host tells the guest agent at boot. The
// host writes it as JSON onto the read-only input disk; the agent reads it
// before anything else.
package bootconfig

import (
	"encoding/json"
	"fmt"
)

const (
	// FileName is the config's name on the input disk.
	FileName = "config.json"
	// DiskSerial is the virtio-blk serial number of the input disk, which
	// is how the agent tells it from the other disks.
	DiskSerial = "dibvm-input"
	// PortName is the virtio-serial port that carries the SSH control
	// channel.
	PortName = "org.dibvm.agent.0"
)

// Config is the agent's boot configuration.
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

// Parse decodes a config and checks that its required fields are set.
func Parse(data []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", FileName, err)
	}
	if c.AuthorizedKey == "" || c.HostKey == "" {
		return nil, fmt.Errorf("%s: authorized_key and host_key are required", FileName)
	}
	return &c, nil
}
