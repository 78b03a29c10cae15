package plan

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/dibvm/dibvm/host/egress"
)

// hostLoopback is the host's loopback addresses the guest carries to
// the host (see egress.Policy.HostLoopback): those the hooks' settings
// name in URLs and those --allow-net names with a port. A DIB_* setting
// that names one --allow-net does not open is an error now, before the
// VM boots: DIB means the host's service, which the build could then
// never reach. Other variables' URLs (a hook may never use them) are
// carried anyway, for the proxy to refuse and say how to open them.
func hostLoopback(pol egress.Policy, env map[string]string) ([]string, error) {
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	slices.Sort(names)
	var urls []netip.AddrPort
	for _, k := range names {
		for _, a := range egress.LoopbackURLs(env[k]) {
			if strings.HasPrefix(k, "DIB_") && !pol.OpensLoopback(a) {
				// The address only: the URL may hold credentials.
				return nil, fmt.Errorf("%s names %s, a service on this host's loopback, which the helper VM reaches only when it is opened: add --allow-net %s (or set DIBVM_ALLOW_NET)", k, a, a)
			}
			urls = append(urls, a)
		}
	}
	var out []string
	for _, a := range pol.HostLoopback(urls) {
		out = append(out, a.String())
	}
	return out, nil
}
