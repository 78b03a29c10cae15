// Package registrytest runs the reference OCI-distribution registry
// (Debian's docker-registry, as scripts/install-deps.sh installs it) on
// 127.0.0.1 for tests, with its storage on disk where a test can change
// a blob behind its back.
package registrytest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// A Registry is a running registry.
type Registry struct {
	// Addr is its host:port, on 127.0.0.1.
	Addr string
	// Dir holds its configuration and storage.
	Dir string
}

// Start runs a registry until the test ends. With a user and password,
// it asks for them (HTTP basic authentication, from an htpasswd file).
func Start(t testing.TB, user, password string) *Registry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatal("docker-registry is needed (scripts/install-deps.sh installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Registry{Addr: ln.Addr().String(), Dir: t.TempDir()}
	ln.Close()
	auth := ""
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(r.Dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth: {htpasswd: {realm: dibvm-test, path: %s}}\n", htpasswd)
	}
	config := filepath.Join(r.Dir, "config.yml")
	yml := fmt.Sprintf("version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\nhttp: {addr: %s, secret: test}\n%s", filepath.Join(r.Dir, "data"), r.Addr, auth)
	if err := os.WriteFile(config, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "serve", config)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for range 200 {
		if c, err := net.Dial("tcp", r.Addr); err == nil {
			c.Close()
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the registry did not listen:\n%s", out.String())
	return nil
}

// Blobs are the files of the registry's blobs, as it stores them.
func (r *Registry) Blobs() []string {
	b, _ := filepath.Glob(filepath.Join(r.Dir, "data", "docker", "registry", "v2", "blobs", "sha256", "*", "*", "data"))
	return b
}

// DockerConfig writes a Docker config.json in dir that gives user and
// password for the registry, as `docker login` would; point
// DOCKER_CONFIG at dir.
func (r *Registry) DockerConfig(t testing.TB, dir, user, password string) {
	t.Helper()
	cfg := map[string]any{"auths": map[string]any{r.Addr: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}}}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Hanging is a listener on 127.0.0.1 that takes connections and never
// answers, as a registry that hangs; it closes when the test ends.
func Hanging(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln.Addr().String()
}
