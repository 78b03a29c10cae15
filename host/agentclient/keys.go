// Package agentclient is the host's side of the control channel: an SSH
// client that reaches the guest agent through QEMU's virtio-serial socket
// and runs commands there.
package agentclient

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"

	"golang.org/x/crypto/ssh"
)

// Keys are the two key pairs of one boot, made fresh each time: the
// host's, which the agent accepts and no other, and the agent's host key,
// which the host expects and no other.
type Keys struct {
	Client   ssh.Signer
	Guest    ssh.Signer
	guestPEM []byte
}

// NewKeys makes a fresh pair of ed25519 keys.
func NewKeys() (*Keys, error) {
	_, cpriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	client, err := ssh.NewSignerFromKey(cpriv)
	if err != nil {
		return nil, err
	}
	_, gpriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	guest, err := ssh.NewSignerFromKey(gpriv)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(gpriv, "dibvm guest")
	if err != nil {
		return nil, err
	}
	return &Keys{Client: client, Guest: guest, guestPEM: pem.EncodeToMemory(block)}, nil
}

// AuthorizedKey is the host's public key in authorized_keys format.
func (k *Keys) AuthorizedKey() string {
	return string(ssh.MarshalAuthorizedKey(k.Client.PublicKey()))
}

// GuestPrivateKey is the agent's host key in PEM, for the input disk.
func (k *Keys) GuestPrivateKey() string { return string(k.guestPEM) }
