package build

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

// DIB's hooks inherit the whole environment of disk-image-create, and
// elements rely on it: an environment.d file that says
// `export X=${X:-default}` takes the caller's X. So the caller's
// variables cross into the build, except those that describe the host
// (its paths, sockets, display, proxies), which mean nothing in the VM,
// and those whose names look like secrets, which must not reach hooks
// that may not be the user's own and that have the network. DIB_*
// settings and break always cross: they are the build's settings, and
// the user named them for it.

// hostSpecific are variables of the host's session, withheld by name.
var hostSpecific = map[string]bool{
	"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true,
	"TMPDIR": true, "TMP": true, "TEMP": true, "PWD": true, "OLDPWD": true,
	"SHLVL": true, "_": true, "MAIL": true, "TERM": true, "COLORTERM": true,
	"DISPLAY": true, "WAYLAND_DISPLAY": true, "XAUTHORITY": true,
	"DBUS_SESSION_BUS_ADDRESS": true, "SSH_AUTH_SOCK": true, "SSH_AGENT_PID": true,
	"SSH_CONNECTION": true, "SSH_CLIENT": true, "SSH_TTY": true, "GPG_AGENT_INFO": true,
	"KRB5CCNAME": true, "KUBECONFIG": true, "DOCKER_HOST": true, "LD_PRELOAD": true,
	"LD_LIBRARY_PATH": true, "ELEMENTS_PATH": true, "DIBVM_RUNTIME_DIR": true,
	"DIBVM_CACHE_DIR": true, "TMUX": true, "TMUX_PANE": true, "STY": true,
	"HOSTNAME": true, "HISTFILE": true, "PROMPT_COMMAND": true,
	// Variables that change how shells, interpreters and libc behave, and
	// name host paths: in the guest they would break hooks or redirect
	// them (glibc drops most of them for setuid programs for that reason).
	"BASH_ENV": true, "ENV": true, "CDPATH": true, "GLOBIGNORE": true, "IFS": true,
	"PYTHONHOME": true, "PYTHONPATH": true, "PYTHONSTARTUP": true, "PYTHONUSERBASE": true,
	"PERL5LIB": true, "PERLLIB": true, "PERL5OPT": true, "RUBYLIB": true, "RUBYOPT": true, "NODE_PATH": true, "NODE_OPTIONS": true,
	"GCONV_PATH": true, "GETCONF_DIR": true, "HOSTALIASES": true, "LOCALDOMAIN": true, "LOCPATH": true,
	"MALLOC_TRACE": true, "NIS_PATH": true, "NLSPATH": true, "RESOLV_HOST_CONF": true, "RES_OPTIONS": true,
	"TZDIR": true, "TERMINFO": true, "TERMINFO_DIRS": true,
}

// hostSpecificPrefixes withhold families of host variables. The host's
// proxies are among them: the guest's only way out is dibvm's own proxy.
var hostSpecificPrefixes = []string{"XDG_", "DIBVM_", "LC_", "SUDO_", "LD_"}

var proxyNames = map[string]bool{"http_proxy": true, "https_proxy": true, "ftp_proxy": true, "all_proxy": true, "no_proxy": true}

// secretWords and secretPrefixes mark names that look like credentials.
var (
	secretWords    = []string{"TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "PRIVATE", "_KEY", "APIKEY", "API_KEY", "AUTH", "COOKIE", "SESSION", "WEBHOOK", "_DSN"}
	secretPrefixes = []string{"AWS_", "AZURE_", "ARM_", "GOOGLE_", "GCP_", "GCLOUD_", "CLOUDSDK_", "GITHUB_", "GH_", "GITLAB_", "CI_JOB_", "CI_REGISTRY_", "ACTIONS_", "RUNNER_", "BUILDKITE_", "CIRCLE_", "TRAVIS_", "VAULT_", "OS_", "NPM_", "PYPI_", "TWINE_", "DOCKER_", "REGISTRY_", "SSH_"}
)

// shellInternal are the shell's own, not worth naming in the log.
var shellInternal = map[string]bool{"PWD": true, "OLDPWD": true, "SHLVL": true, "_": true}

// withholds reports whether the caller's variable stays on the host:
// host-specific or secret-shaped.
func withholds(name string) bool {
	if strings.HasPrefix(name, "DIB_") || name == "break" {
		return false
	}
	upper := strings.ToUpper(name)
	if hostSpecific[name] || proxyNames[strings.ToLower(name)] {
		return true
	}
	for _, p := range append(hostSpecificPrefixes, secretPrefixes...) {
		if strings.HasPrefix(upper, p) {
			return true
		}
	}
	for _, w := range secretWords {
		if strings.Contains(upper, w) {
			return true
		}
	}
	return false
}

// urlWithPassword matches a URL with a password in it, as CI systems put
// their job tokens into clone URLs (CI_REPOSITORY_URL) and package indexes
// take them (PIP_INDEX_URL): the value is the secret, whatever its name.
var urlWithPassword = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*:[^/@\s]*@`)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// hookEnv is what of the caller's environment the hooks see: every
// variable but those withheld (or, with noHost, only DIB_* and break),
// then the explicit --env ones, NAME=VALUE or NAME for the caller's
// value. withheld lists the names kept back, sorted, for the log.
func hookEnv(environ, explicit []string, noHost bool) (env map[string]string, withheld []string, err error) {
	env = map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			continue
		}
		hold := withholds(k) || noHost && !strings.HasPrefix(k, "DIB_") && k != "break" ||
			!strings.HasPrefix(k, "DIB_") && urlWithPassword.MatchString(v)
		if hold {
			if !shellInternal[k] {
				withheld = append(withheld, k)
			}
			continue
		}
		env[k] = v
	}
	for _, e := range explicit {
		k, v, hasValue := strings.Cut(e, "=")
		if !envName.MatchString(k) {
			return nil, nil, fmt.Errorf("--env %q: want NAME or NAME=VALUE, where NAME is letters, digits and _", e)
		}
		if !hasValue {
			var ok bool
			// The caller's value; with -c, which clears the environment,
			// still the value dibvm was started with: the user named it.
			if v, ok = lookupOK(environ, k); !ok {
				v, ok = os.LookupEnv(k)
			}
			if !ok {
				return nil, nil, fmt.Errorf("--env %s: %s is not set here; give its value as --env %s=VALUE", k, k, k)
			}
		}
		env[k] = v
		withheld = removeName(withheld, k)
	}
	sort.Strings(withheld)
	return env, withheld, nil
}

func removeName(names []string, name string) []string {
	out := names[:0]
	for _, n := range names {
		if n != name {
			out = append(out, n)
		}
	}
	return out
}

func lookupOK(environ []string, key string) (string, bool) {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}
