package plan

import (
	"path/filepath"
	"strings"

	"github.com/dibvm/dibvm/host/hookenv"
	"github.com/dibvm/dibvm/host/provenance"
)

// Provenance is what the build's provenance statement says of its
// inputs (see host/provenance): the session adds the helper appliance,
// the times and the outputs, and the command line which dibvm it is.
func (p *Plan) Provenance() (provenance.Build, error) {
	host, err := p.hostInputs()
	if err != nil {
		return provenance.Build{}, err
	}
	secrets := hookenv.Secrets(p.Spec.Env)
	b := provenance.Build{Spec: p.Spec, Secret: func(name, _ string) bool { return secrets[name] }, ElementsTar: p.elementsTar(), HostFiles: map[string]string{}}
	for _, in := range host {
		// "host path X" and "host file X" name the variable X.
		_, name, _ := strings.Cut(in.Name, " ")
		_, name, _ = strings.Cut(name, " ")
		b.HostFiles[name] = in.Digest
	}
	if r := p.Options.Reproducible; r != nil {
		b.Seed = r.Seed
	}
	b.NotReproducible = p.NotReproducible
	b.QemuImgOptions, b.DockerTarget, b.Uncompressed = p.Options.QemuImgOptions, p.Options.DockerTarget, p.Options.Uncompressed
	if pf := p.Options.PackagesFrom; pf != nil {
		b.PackagesFrom, b.PackagesFromSHA256 = filepath.Base(pf.Name), pf.SHA256
	}
	return b, nil
}
