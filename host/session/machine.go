package session

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/agentclient"
	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/gateway"
	"github.com/dibvm/dibvm/host/iso"
	"github.com/dibvm/dibvm/host/machine"
)

// This file is where a session meets host/machine: the VM's options, and
// the *machine.Machine behind VM.

// machineOptions is mo with what the job gives the VM: its input disk's
// files, the scratch and output disks and the host's disks, and the
// egress proxy's cache and signed sources (the gateway host/cli made).
func (s *session) machineOptions(mo machine.Options) (machine.Options, error) {
	mo.Inputs = s.j.Inputs
	proxy := gateway.Of(mo.Service)
	proxy.DownloadCache = s.j.ImageCache
	proxy.Offline = s.j.Offline
	proxy.Served = s.downloads.Served
	if l := s.j.Replay; l != nil {
		if err := keepReleases(s.j.ImageCache, l); err != nil {
			return mo, err
		}
		proxy.Pins = l.Pins(s.j.ReplayName)
	}
	if mo.Appliance != nil && s.j.SignedSources != nil {
		var err error
		if proxy.Signed, err = s.j.SignedSources(mo.Appliance.Keyrings); err != nil {
			return mo, err
		}
	}
	mo.Service = &proxy
	mo.Disks = []machine.Disk{
		{Serial: api.ScratchSerial, Size: s.j.ScratchSize},
		{Serial: api.OutputSerial, Size: s.j.ScratchSize},
	}
	for _, d := range s.j.HostDisks {
		mo.Disks = append(mo.Disks, machine.Disk{Serial: d.Serial, Source: d.Source})
	}
	if s.j.ImageLayer != "" {
		mo.Disks = append(mo.Disks, machine.Disk{Serial: api.ImageSerial, Layer: s.j.ImageLayer})
	}
	return mo, nil
}

// helperVM is what of the VM mo describes a checkpoint's key records.
func helperVM(mo machine.Options) checkpoint.HelperVM {
	proxy := gateway.Of(mo.Service)
	vm := checkpoint.HelperVM{
		CPUs: mo.CPUs, CPUModel: mo.CPUModel, Memory: mo.Memory, Network: mo.Network, Offline: proxy.Offline,
		Egress: fmt.Sprintf("%+v", proxy.Policy),
	}

	if mo.Appliance != nil {
		// Its directory is named for what it was built from.
		vm.Appliance = filepath.Base(filepath.Dir(mo.Appliance.Initrd))
	}
	return vm
}

// onLayer is mo with the scratch disk on the keeper's layer, and the
// spec on the input disk as the keeper left it (where to resume, what to
// keep).
func (s *session) onLayer(mo machine.Options) (machine.Options, error) {
	mo.Disks[0] = machine.Disk{Serial: api.ScratchSerial, Layer: s.keep.Layer()}
	var err error
	mo.Inputs, err = withSpec(mo.Inputs, s.j.Spec)
	return mo, err
}

// withSpec is inputs with the spec file written anew from spec.
func withSpec(inputs []iso.File, spec *api.Spec) ([]iso.File, error) {
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(inputs)
	for i := range out {
		if out[i].Name == api.SpecFile {
			out[i].Data = js
		}
	}
	return out, nil
}

// startMachine boots the helper VM.
func startMachine(ctx context.Context, mo machine.Options) (VM, error) {
	m, err := machine.Start(ctx, mo)
	if err != nil {
		return nil, err
	}
	return booted{m}, nil
}

// booted is a *machine.Machine as a session's VM.
type booted struct{ *machine.Machine }

func (b booted) Run(cmd agentclient.Command) error { return b.Client.Run(cmd) }
