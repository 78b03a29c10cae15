package cli

import (
	"cmp"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/envvar"
	"github.com/dibvm/dibvm/host/ocicache"
	"github.com/dibvm/dibvm/host/sshsign"
)

// sharedCacheFlags are the registries a build shares checkpoints
// through: pulled only signed by a key the user trusts, pushed only
// signed, and only when asked.
type sharedCacheFlags struct {
	to, sign, trust string
	from            []string
}

func (c *sharedCacheFlags) register(f *pflag.FlagSet) {
	f.StringArrayVar(&c.from, "cache-from", nil, "resume from checkpoints in this OCI registry repository (REGISTRY/PATH), signed by a key of --cache-trust, where this build computes their key; repeatable, the first that has one wins (env DIBVM_CACHE_FROM, comma-separated)")
	f.StringVar(&c.trust, "cache-trust", "", "the OpenSSH public keys whose --cache-from checkpoints to take, one a line as in allowed_signers or authorized_keys (env DIBVM_CACHE_TRUST)")
	f.StringVar(&c.to, "cache-to", "", "push the checkpoints this build keeps to this OCI registry repository, signed with --cache-sign; for trusted pipelines only (env DIBVM_CACHE_TO)")
	f.StringVar(&c.sign, "cache-sign", "", "the OpenSSH private key (no passphrase) that signs what --cache-to pushes, as ssh-keygen -Y sign -n dibvm-cache would (env DIBVM_CACHE_SIGN)")
}

// any says whether a registry is named, by a flag or the environment.
func (c *sharedCacheFlags) any(env []string) bool {
	return len(c.from) > 0 || c.to != "" || envvar.Get(env, "DIBVM_CACHE_FROM") != "" || envvar.Get(env, "DIBVM_CACHE_TO") != ""
}

// shared is the build's shared cache of checkpoints, nil for none, with
// a pull bounded by the local store's size.
func (c *sharedCacheFlags) shared(env []string, lim checkpoint.Limits) (*ocicache.Registries, error) {
	from := c.from
	if len(from) == 0 {
		from = splitList(envvar.Get(env, "DIBVM_CACHE_FROM"))
	}
	to := cmp.Or(c.to, envvar.Get(env, "DIBVM_CACHE_TO"))
	if len(from) == 0 && to == "" {
		return nil, nil
	}
	var errs []error
	out := &ocicache.Registries{}
	for _, ref := range from {
		r, err := ocicache.Parse(ref)
		if err != nil {
			errs = append(errs, fmt.Errorf("--cache-from %w", err))
			continue
		}
		r.Limit = lim.MaxSize
		out.From = append(out.From, r)
	}
	if len(from) > 0 {
		trust := cmp.Or(c.trust, envvar.Get(env, "DIBVM_CACHE_TRUST"))
		var err error
		switch {
		case trust == "":
			err = errors.New("--cache-from takes only checkpoints signed by keys you trust: give them as --cache-trust FILE (one OpenSSH public key a line, as in allowed_signers)")
		default:
			if out.Trusted, err = sshsign.LoadTrusted(trust); err == nil && len(out.Trusted) == 0 {
				err = errors.New("no keys in it")
			}
			if err != nil {
				err = fmt.Errorf("--cache-trust %s (or DIBVM_CACHE_TRUST): %w", trust, err)
			}
		}
		errs = append(errs, err)
	}
	if to != "" {
		r, err := ocicache.Parse(to)
		if err != nil {
			errs = append(errs, fmt.Errorf("--cache-to %w", err))
		}
		out.To = r
		switch sign := cmp.Or(c.sign, envvar.Get(env, "DIBVM_CACHE_SIGN")); sign {
		case "":
			errs = append(errs, errors.New("--cache-to signs what it pushes: give the OpenSSH private key to sign with as --cache-sign KEYFILE"))
		default:
			if out.Sign, err = sshsign.LoadSigner(sign); err != nil {
				errs = append(errs, fmt.Errorf("--cache-sign %s (or DIBVM_CACHE_SIGN): %w", sign, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
