package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/ocicache"
	"github.com/dibvm/dibvm/host/sshsign"
	"github.com/dibvm/dibvm/host/termsafe"
	"github.com/dibvm/dibvm/vmimage"
)

// This file is `dibvm cache ls/push/pull --remote`: checkpoints in a
// registry, listed and moved by hand, under the same rules as a build's
// --cache-from and --cache-to.

// remoteFlags name a registry repository and the keys for it.
type remoteFlags struct {
	ref, trust, sign string
}

func (r *remoteFlags) remote() (*ocicache.Remote, error) {
	if r.ref == "" {
		return nil, usagef("give the registry repository as --remote REGISTRY/PATH")
	}
	rem, err := ocicache.Parse(r.ref)
	if err != nil {
		return nil, usagef("--remote %v", err)
	}
	rem.Limit = defaultCheckpointSize
	return rem, nil
}

func (r *remoteFlags) trusted(need bool) (sshsign.Trusted, error) {
	if r.trust == "" {
		if need {
			return nil, usagef("give the OpenSSH public keys whose checkpoints to take as --cache-trust FILE")
		}
		return nil, nil
	}
	t, err := sshsign.LoadTrusted(r.trust)
	if err != nil {
		return nil, fmt.Errorf("--cache-trust %s: %w", r.trust, err)
	}
	return t, nil
}

// cacheLsRemote lists the checkpoints in a registry: key, phase,
// elements, size, and who signed it, if a key of --cache-trust did.
func cacheLsRemote(cmd *cobra.Command, rf *remoteFlags) error {
	rem, err := rf.remote()
	if err != nil {
		return err
	}
	trusted, err := rf.trusted(false)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	keys, err := rem.Keys(ctx)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if len(keys) == 0 {
		fmt.Fprintf(out, "No checkpoints in %s\n", rem.Repo)
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CHECKPOINT\tAFTER\tLAYERS\tSIZE\tELEMENTS\tSIGNED BY")
	bases := 0
	for _, key := range keys {
		if strings.HasPrefix(key, "appliance-") {
			bases++
		}
		desc, signer, err := rem.Describe(ctx, key, trusted)
		if err != nil {
			// Not trusted: the rest is the registry's word, unchecked.
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t%s\n", shortKey(key), termsafe.String(why(err)))
			continue
		}
		var chain []*checkpoint.Meta
		json.Unmarshal(desc.Data, &chain)
		var size int64
		for _, f := range desc.Files {
			size += f.Size
		}
		phase, elements := "-", "-"
		if strings.HasPrefix(key, "appliance-") {
			phase = "(helper appliance base)"
		} else if n := len(chain); n > 0 {
			phase, elements = chain[n-1].Phase, strings.Join(chain[n-1].Elements, " ")
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", shortKey(key), termsafe.String(phase), len(desc.Files), mib(size), termsafe.String(elements), signer)
	}
	w.Flush()
	fmt.Fprintf(out, "%d checkpoints and %d appliance bases in %s\n", len(keys)-bases, bases, rem.Repo)
	return nil
}

// why is the reason an artifact is not listed as trusted.
func why(err error) string {
	switch {
	case errors.Is(err, sshsign.ErrUntrusted):
		return "a key not in --cache-trust"
	case errors.Is(err, ocicache.ErrRefused):
		return "refused: " + err.Error()
	}
	return err.Error()
}

func cachePushCommand() *cobra.Command {
	var rf remoteFlags
	cmd := &cobra.Command{
		Use:   "push --remote REGISTRY/PATH --cache-sign KEYFILE [CHECKPOINT...]",
		Short: "Push checkpoints (all, or those named by a prefix of their key) to a registry, signed",
		RunE: func(cmd *cobra.Command, args []string) error {
			rem, err := rf.remote()
			if err != nil {
				return err
			}
			if rf.sign == "" {
				return usagef("give the OpenSSH private key to sign with as --cache-sign KEYFILE")
			}
			signer, err := sshsign.LoadSigner(rf.sign)
			if err != nil {
				return fmt.Errorf("--cache-sign %s: %w", rf.sign, err)
			}
			store, err := checkpointStore()
			if err != nil {
				return err
			}
			ss, err := store.Open()
			if err != nil {
				return err
			}
			defer ss.Close()
			all, err := store.List()
			if err != nil {
				return err
			}
			keys, err := matching(args, all)
			if err != nil {
				return err
			}
			sh := &ocicache.Registries{To: rem, Sign: signer}
			verified := map[string]bool{}
			// The appliance's base, which a runner with none takes so that
			// its checkpoints' keys are these.
			vf := &vmFlags{mirror: os.Getenv("DIBVM_MIRROR")}
			if cache, spec, _, err := vf.applianceCache(); err == nil {
				cache.Shared = sh
				switch err := cache.SendBase(cmd.Context(), spec); {
				case err == nil:
					fmt.Fprintf(cmd.OutOrStdout(), "Pushed the helper appliance's base to %s\n", rem.Repo)
				case errors.Is(err, vmimage.ErrHaveIt), errors.Is(err, vmimage.ErrNotCached):
				default:
					fmt.Fprintf(cmd.ErrOrStderr(), "dibvm: the helper appliance's base not pushed: %s\n", termsafe.String(err.Error()))
				}
			}
			for _, key := range keys {
				start := time.Now()
				if err := ss.Give(cmd.Context(), sh, key, verified); err != nil {
					return fmt.Errorf("checkpoint %s: %w", checkpoint.Short(key), err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Pushed checkpoint %s to %s (%.1fs)\n", checkpoint.Short(key), rem.Repo, time.Since(start).Seconds())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&rf.ref, "remote", "", "the registry repository, REGISTRY/PATH")
	f.StringVar(&rf.sign, "cache-sign", "", "the OpenSSH private key (no passphrase) to sign with")
	return cmd
}

// matching are the keys of the checkpoints prefixes name, or all.
func matching(prefixes []string, all []*checkpoint.Meta) ([]string, error) {
	var out []string
	for _, m := range all {
		if len(prefixes) == 0 {
			out = append(out, m.Key)
		}
	}
	for _, p := range prefixes {
		var found []string
		for _, m := range all {
			if strings.HasPrefix(m.Key, p) {
				found = append(found, m.Key)
			}
		}
		if len(found) != 1 {
			return nil, usagef("checkpoint %q: %d checkpoints' keys start so; give more of the key (dibvm cache ls)", p, len(found))
		}
		out = append(out, found...)
	}
	return out, nil
}

func cachePullCommand() *cobra.Command {
	var rf remoteFlags
	cmd := &cobra.Command{
		Use:   "pull --remote REGISTRY/PATH --cache-trust FILE CHECKPOINT...",
		Short: "Pull checkpoints, each named by a prefix of its key, from a registry into the local store, if signed by a trusted key",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rem, err := rf.remote()
			if err != nil {
				return err
			}
			trusted, err := rf.trusted(true)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			keys, err := rem.Keys(ctx)
			if err != nil {
				return err
			}
			var metas []*checkpoint.Meta
			for _, k := range keys {
				if !strings.HasPrefix(k, "appliance-") {
					metas = append(metas, &checkpoint.Meta{Key: k})
				}
			}
			want, err := matching(args, metas)
			if err != nil {
				return err
			}
			store, err := checkpointStore()
			if err != nil {
				return err
			}
			ss, err := store.Open()
			if err != nil {
				return err
			}
			defer ss.Close()
			sh := &ocicache.Registries{From: []*ocicache.Remote{rem}, Trusted: trusted}
			for _, key := range want {
				start := time.Now()
				m, err := ss.Take(ctx, sh, key, nil)
				if err != nil {
					return fmt.Errorf("checkpoint %s: %w", checkpoint.Short(key), err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Pulled checkpoint %s after %s (%.1fs)\n", checkpoint.Short(key), termsafe.String(m.Phase), time.Since(start).Seconds())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&rf.ref, "remote", "", "the registry repository, REGISTRY/PATH")
	f.StringVar(&rf.trust, "cache-trust", "", "the OpenSSH public keys to accept signatures of, one a line as in allowed_signers")
	return cmd
}

// shortKey is a key as listings show it: a checkpoint's as
// checkpoint.Short, an appliance base's with its kind.
func shortKey(key string) string {
	for _, kind := range []string{"appliance-base-", "appliance-spec-"} {
		if rest, ok := strings.CutPrefix(key, kind); ok {
			return kind + checkpoint.Short(rest)
		}
	}
	return checkpoint.Short(key)
}
