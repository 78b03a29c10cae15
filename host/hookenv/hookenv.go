// Package hookenv decides which of the caller's environment reaches the
// elements' hooks: what describes the host or looks like a secret stays
// behind, unless the user names it with --env.
package hookenv

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/dibvm/dibvm/host/envvar"
)

// DIB's hooks inherit the whole environment of disk-image-create, and
// elements rely on it: an environment.d file that says
// `export X=${X:-default}` takes the caller's X. So the caller's
// variables cross into the build, except those that describe the host
// (its paths, sockets, display, proxies), which mean nothing in the VM,
// and those that look like secrets, by their names, their values or
// what stands beside them, which must not reach hooks that may not be
// the user's own and that have the network. A false alarm costs an
// --env NAME; a secret let through is gone. DIB_*
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
	secretWords    = []string{"TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "PRIVATE", "_KEY", "APIKEY", "API_KEY", "AUTH", "COOKIE", "SESSION", "WEBHOOK", "_DSN", "WRITEKEY", "ID_RSA", "ID_DSA", "ID_ECDSA", "ID_ED25519"}
	secretPrefixes = []string{"AWS_", "AZURE_", "ARM_", "GOOGLE_", "GCP_", "GCLOUD_", "CLOUDSDK_", "GITHUB_", "GH_", "GITLAB_", "CI_JOB_", "CI_REGISTRY_", "ACTIONS_", "RUNNER_", "BUILDKITE_", "CIRCLE_", "TRAVIS_", "VAULT_", "OS_", "NPM_", "PYPI_", "TWINE_", "DOCKER_", "REGISTRY_", "SSH_"}
	// secretSuffixes are the short words for passwords that name
	// variables only at their end (DB_PASS, LDAP_PW, MYSQL_PWD), and
	// Jenkins' credentials bindings, which make NAME_USR and NAME_PSW
	// of a username and password credential (and NAME, user:password).
	secretSuffixes = []string{"_PASS", "_PW", "_PWD", "_PSW"}
	// secretParts are words that mark a secret wherever they stand
	// between underscores: GIT_CREDS, CI_JWT.
	secretParts = []string{"JWT", "CRED", "CREDS"}
	// secretNames are whole names that tools read secrets from.
	secretNames = map[string]bool{"SSHPASS": true, "SONAR_LOGIN": true, "NETRC_CONTENT": true}
)

// shellInternal are the shell's own, not worth naming in the log.
var shellInternal = map[string]bool{"PWD": true, "OLDPWD": true, "SHLVL": true, "_": true}

// crosses reports whether the variable is one of the build's own
// settings, which cross whatever their names or values: the user named
// them for the build.
func crosses(name string) bool { return strings.HasPrefix(name, "DIB_") || name == "break" }

// withholds reports whether the caller's variable stays on the host by
// its name: host-specific or secret-shaped.
func withholds(name string) bool {
	return !crosses(name) && hostOrSecretName(name)
}

// SecretShaped reports whether a variable looks like a credential or a
// host's own by its name or its value, whatever its prefix:
// DIB_DEV_USER_PASSWORD reaches the hooks, which are its use, but must
// not reach anything a build publishes, such as a digest its disk's
// identifiers derive from.
func SecretShaped(name, value string) bool {
	return hostOrSecretName(name) || secretValue(value)
}

// Secrets are the names of env's variables that look like credentials
// by their names, their values or what is beside them (SecretShaped, and
// a user:password under a credential-like name): what a build publishes
// of its settings withholds their values.
func Secrets(env map[string]string) map[string]bool {
	out := map[string]bool{}
	for k, v := range env {
		if SecretShaped(k, v) || secretPair(k, v, env) {
			out[k] = true
		}
	}
	return out
}

// hostOrSecretName reports whether the name is host-specific or
// secret-shaped.
func hostOrSecretName(name string) bool {
	upper := strings.ToUpper(name)
	if hostSpecific[name] || proxyNames[strings.ToLower(name)] || secretNames[upper] {
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
	for _, s := range secretSuffixes {
		if strings.HasSuffix(upper, s) {
			return true
		}
	}
	for _, part := range strings.Split(upper, "_") {
		if slices.Contains(secretParts, part) {
			return true
		}
	}
	return false
}

// Values that are secrets whatever their names: CI systems put job
// tokens into clone URLs (CI_REPOSITORY_URL) and package indexes take
// them (PIP_INDEX_URL), database drivers take connection strings, and a
// git configuration passed in the environment (GIT_CONFIG_VALUE_0) may
// carry an HTTP header with a token.
var (
	// urlUserinfo is a URL with a user part, with or without a password
	// (https://TOKEN@host/ is how GitHub and GitLab take tokens),
	// anywhere in the value.
	urlUserinfo = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s]+@`)
	// privateKey is a PEM (or OpenSSH, or OpenPGP) private key block.
	privateKey = regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----`)
	// passwordPair is a password in a JDBC URL, an ODBC or .NET
	// connection string or a query: password=, pwd=, ; or & separated.
	passwordPair = regexp.MustCompile(`(?i)(^|[;&?\s])\s*(password|passwd|pwd)\s*=\s*[^;&\s]`)
	// authHeader is an HTTP header that carries credentials.
	authHeader = regexp.MustCompile(`(?i)(^|[\s'"=])(proxy-)?(authorization|private-token|job-token|x-api-key|x-auth-token|cookie)\s*:|\bbearer\s+[A-Za-z0-9._~+/-]{8,}`)
	// userPassword is a value shaped user:password, as Jenkins binds a
	// username and password credential to its variable.
	userPassword = regexp.MustCompile(`^[^\s:@/]+:[^\s]+$`)
)

// credentialWords mark names whose user:password-shaped values are
// credentials (a VERSION of 1:2.3 is not).
var credentialWords = []string{"CRED", "LOGIN", "USERPASS", "USER_PASS", "BASIC", "ACCOUNT"}

// secretValue reports whether v holds a secret, whatever its name.
func secretValue(v string) bool {
	return urlUserinfo.MatchString(v) || privateKey.MatchString(v) || passwordPair.MatchString(v) || authHeader.MatchString(v)
}

// secretPair reports whether the variable is a secret by what is
// beside it in environ (names): a Jenkins binding's NAME and NAME_USR
// beside its NAME_PSW, a GIT_CONFIG_VALUE_n whose GIT_CONFIG_KEY_n sets
// an HTTP header or a password; or by a user:password value under a
// credential-like name.
func secretPair(name, value string, names map[string]string) bool {
	upper := strings.ToUpper(name)
	if _, ok := names[strings.TrimSuffix(name, "_USR")+"_PSW"]; ok {
		return true
	}
	if n, ok := strings.CutPrefix(name, "GIT_CONFIG_VALUE_"); ok {
		key := strings.ToLower(names["GIT_CONFIG_KEY_"+n])
		if strings.Contains(key, "extraheader") || strings.HasSuffix(key, "password") || strings.HasSuffix(key, "token") {
			return true
		}
	}
	if userPassword.MatchString(value) {
		for _, w := range credentialWords {
			if strings.Contains(upper, w) {
				return true
			}
		}
	}
	return false
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Filter is what of the caller's environment the hooks see: every
// variable but those withheld by name, by value or by what is beside it (or, with noHost, only DIB_* and break),
// then the explicit --env ones, NAME=VALUE or NAME for its value in
// environ (see Resolve for a value from elsewhere). withheld lists the
// names kept back, sorted, for the log. It reads nothing but its
// arguments.
func Filter(environ, explicit []string, noHost bool) (env map[string]string, withheld []string, err error) {
	env = map[string]string{}
	names := map[string]string{}
	for _, kv := range environ {
		if k, v, _ := strings.Cut(kv, "="); k != "" {
			names[k] = v
		}
	}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			continue
		}
		hold := !crosses(k) && (noHost || withholds(k) || secretValue(v) || secretPair(k, v, names))
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
			if v, ok = envvar.Lookup(environ, k); !ok {
				return nil, nil, fmt.Errorf("--env %s: %s is not set here; give its value as --env %s=VALUE", k, k, k)
			}
		}
		env[k] = v
		withheld = removeName(withheld, k)
	}
	sort.Strings(withheld)
	return env, withheld, nil
}

// Resolve is explicit with each --env NAME that lookup finds given as
// NAME=VALUE; a NAME it does not find, and anything that is no NAME,
// stay as they are, for Filter to refuse. The caller says where a
// value comes from: with -c, which clears the build's environment,
// still the environment dibvm was started with, since the user named it.
func Resolve(explicit []string, lookup func(string) (string, bool)) []string {
	out := make([]string, 0, len(explicit))
	for _, e := range explicit {
		if envName.MatchString(e) {
			if v, ok := lookup(e); ok {
				e += "=" + v
			}
		}
		out = append(out, e)
	}
	return out
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
