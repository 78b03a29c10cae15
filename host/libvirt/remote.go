package libvirt

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"golang.org/x/crypto/ssh"
	"libvirt.org/go/libvirtxml"

	"github.com/dibvm/dibvm/host/sha256sum"
	"github.com/dibvm/dibvm/host/shellquote"
	"github.com/dibvm/dibvm/host/vm"
)

// A daemon on another host cannot open the user's files, so a remote
// build stages them in one of its storage pools (PoolName): the
// appliance's kernel and initramfs once, named by their SHA-256, and each
// build's own disks as volumes of its own, removed when it ends. The
// console and the agent's channel are a file and a socket in the pool's
// directory, reached over the SSH connection that carries libvirt's.
// The output disk comes back through a volume download, only as far as
// the build wrote it.

// PoolName is the storage pool a remote build uses.
const PoolName = "default"

// stage is one remote build's files on the remote host.
type stage struct {
	c      *Conn
	pool   golibvirt.StoragePool
	dir    string // the pool's directory there
	prefix string // of this build's files there
	// vols are this build's writable disks, by their local path.
	vols map[string]golibvirt.StorageVol

	agent net.Listener
	tail  *ssh.Session
	once  sync.Once
}

// stageRemote uploads what m needs and returns m with the remote host's
// paths in it.
func (c *Conn) stageRemote(m *vm.Machine, domain string) (_ *stage, _ *vm.Machine, err error) {
	pool, err := c.pool()
	if err != nil {
		return nil, nil, err
	}
	px, err := c.l.StoragePoolGetXMLDesc(pool, 0)
	if err != nil {
		return nil, nil, err
	}
	var p libvirtxml.StoragePool
	if err := p.Unmarshal(px); err != nil || p.Target == nil || p.Target.Path == "" {
		return nil, nil, fmt.Errorf("%s: pool %s has no directory: dibvm needs a dir pool", c.URI, PoolName)
	}
	id := strings.TrimPrefix(domain, NamePrefix)
	s := &stage{c: c, pool: pool, dir: p.Target.Path, prefix: runPrefix + id + "-", vols: map[string]golibvirt.StorageVol{}}
	s.sweep()
	defer func() {
		if err != nil {
			s.remove()
		}
	}()
	r := *m
	r.Binary, r.BIOS = "", "" // the remote's own QEMU and BIOS
	if r.Kernel, err = s.cached(m.Kernel, "vmlinuz"); err != nil {
		return nil, nil, err
	}
	if r.Initrd, err = s.cached(m.Initrd, "initrd.img"); err != nil {
		return nil, nil, err
	}
	r.Disks = nil
	for i, d := range m.Disks {
		if d.DiskFormat() != "raw" {
			return nil, nil, fmt.Errorf("%s: a layered disk (%s) cannot go to a remote daemon", c.URI, d.Serial)
		}
		name := s.prefix + vm.DiskID(i) + ".img"
		vol, err := s.volume(name, d.Path, !d.Blank)
		if err != nil {
			return nil, nil, err
		}
		if !d.ReadOnly {
			s.vols[d.Path] = vol
		}
		rd := d
		rd.Path = s.dir + "/" + name
		r.Disks = append(r.Disks, rd)
	}
	if m.Console.File == "" || m.Agent == nil || m.UEFI != nil {
		return nil, nil, fmt.Errorf("%s: only the helper VM runs on a remote daemon", c.URI)
	}
	r.Console = vm.Console{File: s.dir + "/" + s.prefix + "console.log"}
	agent := *m.Agent
	agent.Socket = s.dir + "/" + s.prefix + "agent.sock"
	r.Agent = &agent
	if err := s.followConsole(r.Console.File, m.Console.File); err != nil {
		return nil, nil, err
	}
	if err := s.forwardAgent(m.Agent.Socket, agent.Socket); err != nil {
		return nil, nil, err
	}
	return s, &r, nil
}

// runPrefix starts the names of a build's files on the remote, followed
// by its domain's name without NamePrefix.
const runPrefix = "dibvm-run-"

// sweep removes the files of builds that died without removing them (a
// dibvm killed, a connection lost): those whose domain is gone and whose
// files all went untouched for sweepAge, which a build still uploading
// does not leave them.
func (s *stage) sweep() {
	sess, err := s.c.ssh.NewSession()
	if err != nil {
		return
	}
	out, err := sess.Output("date +%s; find " + shellquote.Join(s.dir) + " -maxdepth 1 -name '" + runPrefix + "*' -printf '%f %T@\\n'")
	sess.Close()
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	now, err := strconv.ParseFloat(lines[0], 64)
	if err != nil {
		return
	}
	newest := map[string]float64{}
	for _, l := range lines[1:] {
		name, mtime, ok := strings.Cut(l, " ")
		t, err := strconv.ParseFloat(mtime, 64)
		id, _, _ := strings.Cut(strings.TrimPrefix(name, runPrefix), "-")
		if !ok || err != nil || id == "" {
			continue
		}
		newest[id] = max(newest[id], t)
	}
	for id, t := range newest {
		if now-t < sweepAge.Seconds() {
			continue
		}
		if _, err := s.c.l.DomainLookupByName(NamePrefix + id); err == nil {
			continue
		}
		s.shell("rm -f -- " + shellquote.Join(s.dir+"/"+runPrefix+id+"-") + "*")
	}
}

const sweepAge = 10 * time.Minute

// pool is the remote's pool for dibvm's uploads, if it is there and
// active.
func (c *Conn) pool() (golibvirt.StoragePool, error) {
	pool, err := c.l.StoragePoolLookupByName(PoolName)
	if err == nil {
		var active int32
		if active, err = c.l.StoragePoolIsActive(pool); err == nil && active == 0 {
			err = fmt.Errorf("it is not started")
		}
	}
	if err != nil {
		return pool, fmt.Errorf("%s: no usable storage pool %q for dibvm's uploads (%v): make one on the remote: virsh -c qemu:///session pool-define-as %s dir --target ~/.local/share/libvirt/images && virsh -c qemu:///session pool-build %s && virsh -c qemu:///session pool-start %s", c.URI, PoolName, err, PoolName, PoolName, PoolName)
	}
	return pool, nil
}

// cached is the remote path of a volume with local's bytes, uploaded
// unless a volume of the same digest is there already. It is uploaded
// under a name of its own and then renamed into place on the remote, so
// that a volume of the final name is always whole, whoever else uploads
// it at the same time.
func (s *stage) cached(local, kind string) (string, error) {
	sum, size, err := sha256sum.File(local)
	if err != nil {
		return "", err
	}
	name := "dibvm-" + sum[:16] + "-" + kind
	l := s.c.l
	if vol, err := l.StorageVolLookupByName(s.pool, name); err == nil {
		return l.StorageVolGetPath(vol)
	}
	part := s.prefix + kind + ".part"
	if _, err := s.volume(part, local, true); err != nil {
		return "", err
	}
	// mv -n: another build's whole upload of the same bytes may have
	// landed first; then this one is left to go with the build's files.
	if err := s.shell("mv -n -- " + shellquote.Join(s.dir+"/"+part) + " " + shellquote.Join(s.dir+"/"+name) + " || test -e " + shellquote.Join(s.dir+"/"+name)); err != nil {
		return "", fmt.Errorf("%s: put the uploaded %s in place: %w", s.c.URI, kind, err)
	}
	l.StoragePoolRefresh(s.pool, 0)
	vol, err := l.StorageVolLookupByName(s.pool, name)
	if err != nil {
		return "", fmt.Errorf("%s: the uploaded %s: %w", s.c.URI, kind, err)
	}
	if s.c.Notices != nil {
		fmt.Fprintf(s.c.Notices, "dibvm: uploaded the appliance's %s (%d MiB) to pool %s on %s\n", kind, size>>20, PoolName, s.c.URI)
	}
	return l.StorageVolGetPath(vol)
}

// shell runs a command line on the remote host.
func (s *stage) shell(line string) error {
	sess, err := s.c.ssh.NewSession()
	if err != nil {
		return err
	}
	defer sess.Close()
	if out, err := sess.CombinedOutput(line); err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// volume makes a volume name as large as the local file, with its bytes
// when upload is set (else empty: a blank disk).
func (s *stage) volume(name, local string, upload bool) (golibvirt.StorageVol, error) {
	fi, err := os.Stat(local)
	if err != nil {
		return golibvirt.StorageVol{}, err
	}
	vol, err := s.volumeXML(name, uint64(fi.Size()))
	if err != nil {
		return vol, fmt.Errorf("%s: make volume %s in pool %s: %w", s.c.URI, name, PoolName, err)
	}
	if !upload {
		return vol, nil
	}
	f, err := os.Open(local)
	if err != nil {
		return vol, err
	}
	defer f.Close()
	if err := s.c.l.StorageVolUpload(vol, f, 0, uint64(fi.Size()), 0); err != nil {
		s.c.l.StorageVolDelete(vol, 0)
		return vol, fmt.Errorf("%s: upload %s: %w", s.c.URI, name, err)
	}
	return vol, nil
}

func (s *stage) volumeXML(name string, size uint64) (golibvirt.StorageVol, error) {
	v := libvirtxml.StorageVolume{
		Name:       name,
		Capacity:   &libvirtxml.StorageVolumeSize{Value: size, Unit: "bytes"},
		Allocation: &libvirtxml.StorageVolumeSize{Value: 0, Unit: "bytes"},
		Target:     &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "raw"}},
	}
	x, err := v.Marshal()
	if err != nil {
		return golibvirt.StorageVol{}, err
	}
	return s.c.l.StorageVolCreateXML(s.pool, x, 0)
}

// followConsole copies the remote console file into the local one as the
// guest writes it, as QEMU writes the local one for a local VM.
func (s *stage) followConsole(remote, local string) error {
	f, err := os.OpenFile(local, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	sess, err := s.c.ssh.NewSession()
	if err != nil {
		f.Close()
		return fmt.Errorf("%s: follow the console: %w", s.c.URI, err)
	}
	sess.Stdout = f
	if err := sess.Start("exec tail -c +1 -F " + shellquote.Join(remote) + " 2>/dev/null"); err != nil {
		f.Close()
		sess.Close()
		return fmt.Errorf("%s: follow the console: %w", s.c.URI, err)
	}
	go func() { sess.Wait(); f.Close() }()
	s.tail = sess
	return nil
}

// forwardAgent listens at local and carries each connection to the
// agent's channel socket on the remote host.
func (s *stage) forwardAgent(local, remote string) error {
	ln, err := net.Listen("unix", local)
	if err != nil {
		return err
	}
	s.agent = ln
	go func() {
		for {
			lc, err := ln.Accept()
			if err != nil {
				return
			}
			rc, err := s.c.ssh.Dial("unix", remote)
			if err != nil {
				lc.Close() // not there yet: the agent client tries again
				continue
			}
			go pipe(lc, rc)
		}
	}()
	return nil
}

func pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}

// fetch downloads the first length bytes of the volume behind the local
// disk path into it, leaving blocks of zeros as holes.
func (s *stage) fetch(local string, length int64) error {
	vol, ok := s.vols[local]
	if !ok {
		return fmt.Errorf("no remote disk for %s", local)
	}
	f, err := os.OpenFile(local, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// The host checked the guest's offsets against the disk's size;
	// never write past the local file all the same.
	if fi, err := f.Stat(); err != nil {
		return err
	} else if length > fi.Size() {
		length = fi.Size()
	}
	w := &sparseWriter{f: f}
	if err := s.c.l.StorageVolDownload(vol, w, 0, uint64(length), 0); err != nil {
		return fmt.Errorf("%s: download the output disk: %w", s.c.URI, err)
	}
	return w.err
}

// sparseWriter writes at its offset, skipping blocks of zeros.
type sparseWriter struct {
	f   *os.File
	off int64
	err error
}

var zeros = make([]byte, 64<<10)

func (w *sparseWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		c := min(len(b), len(zeros))
		if !bytes.Equal(b[:c], zeros[:c]) {
			if _, err := w.f.WriteAt(b[:c], w.off); err != nil {
				w.err = err
				return 0, err
			}
		}
		w.off += int64(c)
		b = b[c:]
	}
	return n, nil
}

// remove deletes this build's files on the remote host and stops
// following them.
func (s *stage) remove() {
	s.once.Do(func() {
		if s.agent != nil {
			s.agent.Close()
		}
		if s.tail != nil {
			s.tail.Close()
		}
		if err := s.shell("rm -f -- " + shellquote.Join(s.dir+"/"+s.prefix) + "*"); err != nil && s.c.Notices != nil {
			fmt.Fprintf(s.c.Notices, "dibvm: could not remove this build's files %s* on %s: %v\n", s.dir+"/"+s.prefix, s.c.URI, err)
		}
		s.c.l.StoragePoolRefresh(s.pool, 0)
	})
}
