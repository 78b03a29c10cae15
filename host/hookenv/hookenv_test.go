package hookenv

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/host/envvar"
)

// callerThenProcess looks a name up as dibvm create does for --env NAME:
// in the caller's environment, then in dibvm's own.
func callerThenProcess(caller []string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if v, ok := envvar.Lookup(caller, name); ok {
			return v, true
		}
		return os.LookupEnv(name)
	}
}

func TestHookEnv(t *testing.T) {
	t.Setenv("FROM_HERE", "here")
	caller := []string{
		"DIB_RELEASE=bookworm", "break=after-install", "COLOUR=magenta", "IPA_FLAVOUR=x", "MY_ELEMENT_SETTING=1",
		"DIB_DEV_USER_PASSWORD=pw", // DIB's own setting, secret or not: the user named it for the build
		"PATH=/usr/bin", "HOME=/home/me", "SSH_AUTH_SOCK=/run/agent", "DISPLAY=:0", "XDG_RUNTIME_DIR=/run/user/1",
		"http_proxy=http://proxy:3128", "HTTPS_PROXY=http://proxy:3128", "TERM=xterm", "PWD=/home/me", "_=/usr/bin/dibvm",
		"GITHUB_TOKEN=ghp_x", "AWS_SECRET_ACCESS_KEY=s", "AWS_REGION=eu", "CI_JOB_TOKEN=t", "MY_API_KEY=k", "DB_PASSWORD=p",
		"SIGNING_PASSPHRASE=p", "OS_PASSWORD=p", "NPM_TOKEN=t", "VAULT_ADDR=v", "SECRET=s", "GH_TOKEN=t",
		"=odd", "NOVALUE",
		"CI_REPOSITORY_URL=https://gitlab-ci-token:glcbt-x@gitlab.example.com/g/p.git", "PIP_INDEX_URL=https://u:p@pypi.example/simple",
		"BASH_ENV=/home/me/.bashenv", "PYTHONPATH=/home/me/lib", "LD_AUDIT=x",
		"SENTRY_DSN=https://k@sentry.example/1", "SLACK_WEBHOOK_URL=https://hooks.example/x", "UPSTREAM_URL=https://opendev.org/openstack/x",
	}
	env, withheld, err := Filter(caller, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"DIB_RELEASE": "bookworm", "break": "after-install", "COLOUR": "magenta", "IPA_FLAVOUR": "x",
		"MY_ELEMENT_SETTING": "1", "DIB_DEV_USER_PASSWORD": "pw", "NOVALUE": "",
		"UPSTREAM_URL": "https://opendev.org/openstack/x",
	}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("passed %v\nwant   %v", env, want)
	}
	wantHeld := "AWS_REGION AWS_SECRET_ACCESS_KEY BASH_ENV CI_JOB_TOKEN CI_REPOSITORY_URL DB_PASSWORD DISPLAY GH_TOKEN GITHUB_TOKEN HOME HTTPS_PROXY LD_AUDIT MY_API_KEY NPM_TOKEN OS_PASSWORD PATH PIP_INDEX_URL PYTHONPATH SECRET SENTRY_DSN SIGNING_PASSPHRASE SLACK_WEBHOOK_URL SSH_AUTH_SOCK TERM VAULT_ADDR XDG_RUNTIME_DIR http_proxy"
	if got := strings.Join(withheld, " "); got != wantHeld {
		t.Errorf("withheld %s\nwant     %s", got, wantHeld)
	}

	// --env passes one whatever its name; --no-host-env keeps only DIB_*.
	env, withheld, err = Filter(caller, Resolve([]string{"GITHUB_TOKEN", "EXTRA=1=2", "FROM_HERE"}, callerThenProcess(caller)), true)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"DIB_RELEASE": "bookworm", "break": "after-install", "DIB_DEV_USER_PASSWORD": "pw",
		"GITHUB_TOKEN": "ghp_x", "EXTRA": "1=2", "FROM_HERE": "here"}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("with --env and --no-host-env: %v\nwant %v", env, want)
	}
	for _, n := range withheld {
		if n == "GITHUB_TOKEN" {
			t.Error("an explicit --env is still listed as withheld")
		}
	}
	if !strings.Contains(strings.Join(withheld, " "), "COLOUR") {
		t.Errorf("--no-host-env does not list COLOUR as withheld: %v", withheld)
	}
}

func TestHookEnvRefusesBadNames(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "want NAME or NAME=VALUE",
		"=x":               "want NAME or NAME=VALUE",
		"1X=2":             "want NAME or NAME=VALUE",
		"A B=1":            "want NAME or NAME=VALUE",
		"NOT_SET_ANYWHERE": "NOT_SET_ANYWHERE is not set here",
	} {
		if _, _, err := Filter(nil, Resolve([]string{in}, os.LookupEnv), false); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--env") {
			t.Errorf("--env %q: %v, want an error saying %q", in, err, want)
		}
	}
}

// TestHookEnvSecrets is the filter against the secrets CI systems and
// tools keep in the environment, by name, by value and by what is beside
// them, and against ordinary settings it must leave alone.
func TestHookEnvSecrets(t *testing.T) {
	const pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
	for _, tc := range []struct {
		name, value string
		held        bool
		beside      []string // other variables of the environment
	}{
		// Names of secrets.
		{"SSHPASS", "hunter2", true, nil},
		{"MYSQL_PWD", "hunter2", true, nil},
		{"DB_PASS", "hunter2", true, nil},
		{"ANSIBLE_BECOME_PASS", "hunter2", true, nil},
		{"LDAP_PW", "hunter2", true, nil},
		{"NEXUS_PSW", "hunter2", true, nil},
		{"GIT_CREDS", "me:hunter2", true, nil},
		{"JWT", "eyJhbGciOiJIUzI1NiJ9.e30.x", true, nil},
		{"CI_JWT_V2", "eyJ", true, nil},
		{"SONAR_LOGIN", "squ_0123456789abcdef", true, nil},
		{"SEGMENT_WRITEKEY", "abc", true, nil},
		{"RUDDERSTACK_WRITE_KEY", "abc", true, nil},
		{"ID_RSA", "x", true, nil},
		{"DEPLOY_ID_ED25519", "x", true, nil},
		{"GITHUB_TOKEN", "ghp_x", true, nil},
		{"NPM_AUTH", "x", true, nil},
		{"sshpass", "hunter2", true, nil},
		// Values of secrets, under neutral names.
		{"DEPLOY", pem, true, nil},
		{"SIGNER", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", true, nil},
		{"BACKUP_SIGNER", "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQ\n-----END PGP PRIVATE KEY BLOCK-----", true, nil},
		{"EC_DATA", "-----BEGIN EC PRIVATE KEY-----", true, nil},
		{"REPO", "https://ghp_0123456789@github.com/org/repo.git", true, nil},
		{"CLONE", "git clone https://oauth2:glpat-x@gitlab.example.com/g/p.git", true, nil},
		{"CI_REPOSITORY_URL", "https://gitlab-ci-token:glcbt-x@gitlab.example.com/g/p.git", true, nil},
		{"PIP_INDEX_URL", "https://u:p@pypi.example/simple", true, nil},
		{"PIP_EXTRA", "--extra-index-url HTTPS://tok@pypi.example/simple", true, nil},
		{"MIRRORS", "http://deb.debian.org/debian ftp://anonymous@ftp.example/pub", true, nil},
		{"JDBC_URL", "jdbc:mysql://db.example:3306/app?user=app&password=hunter2", true, nil},
		{"MSSQL_URL", "jdbc:sqlserver://db.example;databaseName=app;user=app;password=hunter2", true, nil},
		{"CONNECTION_STRING", "Server=db;Database=app;User Id=app;Password=hunter2;", true, nil},
		{"ODBC", "DRIVER={ODBC Driver 18};SERVER=db;UID=app;PWD=hunter2", true, nil},
		{"DB_OPTS", "host=db user=app password=hunter2", true, nil},
		{"HEADER", "Authorization: Basic dXNlcjpwYXNz", true, nil},
		{"EXTRA_HEADERS", "X-Trace: 1\nauthorization: token abc", true, nil},
		{"CURL_HEADER", "Bearer eyJhbGciOiJIUzI1NiJ9", true, nil},
		{"GL_HEADER", "PRIVATE-TOKEN: glpat-x", true, nil},
		{"GIT_CONFIG_PARAMETERS", "'http.https://example.com/.extraheader=AUTHORIZATION: basic eDp5'", true, nil},
		{"GIT_CONFIG_VALUE_0", "AUTHORIZATION: basic eDp5", true, []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraheader"}},
		{"GIT_CONFIG_VALUE_1", "PRIVATE-TOKEN glpat-x", true, []string{"GIT_CONFIG_COUNT=2", "GIT_CONFIG_KEY_1=http.https://gitlab.example.com/.extraHeader"}},
		// Jenkins' username and password bindings: NAME=user:password,
		// NAME_USR and NAME_PSW; user:password under credential names.
		{"NEXUS", "deployer:hunter2", true, []string{"NEXUS_USR=deployer", "NEXUS_PSW=hunter2"}},
		{"NEXUS_USR", "deployer", true, []string{"NEXUS=deployer:hunter2", "NEXUS_PSW=hunter2"}},
		{"REGISTRY_LOGIN", "deployer:hunter2", true, nil},
		{"ARTIFACTORY_CRED", "deployer:hunter2", true, nil},
		{"MIRROR_ACCOUNT", "deployer:hunter2", true, nil},

		// Ordinary settings, which cross.
		{"DIB_RELEASE", "bookworm", false, nil},
		{"DIB_DEV_USER_PASSWORD", "hunter2", false, nil},
		{"DIB_DEV_USER_PWDLESS_SUDO", "yes", false, nil},
		{"DIB_DISTRIBUTION_MIRROR", "http://deb.debian.org/debian", false, nil},
		{"DIB_REPOLOCATION_x", "https://u:p@git.example/x", false, nil}, // DIB_* cross, whatever they hold
		{"DIB_USR", "x", false, []string{"DIB_PSW=y"}},
		{"break", "after-error", false, nil},
		{"LANG", "C.UTF-8", false, nil},
		{"TZ", "Europe/Paris", false, nil},
		{"UPSTREAM", "http://host:8080/path", false, nil},
		{"MIRROR", "https://deb.debian.org/debian?x=1&y=@z", false, nil},
		{"NPM_SCOPE_URL_LIKE", "x", true, nil}, // NPM_*: the registry's token lives there
		{"PACKAGE_URL", "https://registry.example/@scope/pkg", false, nil},
		{"REPO_SCP", "git@github.com:org/repo.git", false, nil},
		{"MAINTAINER", "Jane <jane@example.com>", false, nil},
		{"PASSENGER_APP_ENV", "production", false, nil},
		{"PASSENGER_PASSWORD_LESS", "x", true, nil}, // says PASSWORD: kept back
		{"CACHE_BYPASS", "1", false, nil},
		{"COMPASS_DIR", "/srv/compass", false, nil},
		{"PASSES", "3", false, nil},
		{"VERSION", "1:2.3-4", false, nil},
		{"PKG_VERSION", "2:9.0.1378-2", false, nil},
		{"BUILD_USER", "builder:builder", false, nil}, // user:group, not a credential name
		{"OWNER", "root:root", false, nil},
		{"SETTINGS", "mode=fast;level=3", false, nil},
		{"CFLAGS", "-O2 -g", false, nil},
		{"MESSAGE", "the bearer of news", false, nil},
		{"SCHEDULE", "10:30", false, nil},
		{"SECRETARY_NAME", "x", true, nil}, // says SECRET: kept back
		{"KEYBOARD_LAYOUT", "us", false, nil},
		{"SSH_PORT_LIKE", "22", true, nil},
		{"GIT_CONFIG_VALUE_0", "true", false, []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=core.autocrlf"}},
		{"ELEMENT_MIRROR", "http://[::1]:3142/debian", false, nil},
		{"LOGIN_SHELL", "/bin/bash", false, nil},
		{"IMAGE_LAYER_PEM", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", false, nil},
		{"ELEMENTS_PATH", "/home/me/elements", true, nil}, // the host's: the build has its own
	} {
		environ := append([]string{tc.name + "=" + tc.value}, tc.beside...)
		env, withheld, err := Filter(environ, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		_, passed := env[tc.name]
		if passed == tc.held {
			t.Errorf("%s=%q: passed %v, want %v", tc.name, tc.value, passed, !tc.held)
		}
		if slices.Contains(withheld, tc.name) != tc.held {
			t.Errorf("%s: the log's list of withheld names is %v", tc.name, withheld)
		}
		// The log names what is withheld, never its value.
		for _, n := range withheld {
			if strings.Contains(n, "=") || strings.Contains(n, "hunter2") || strings.Contains(n, "BEGIN") {
				t.Errorf("the log's list %v shows a value", withheld)
			}
		}
		// --env passes a withheld one, as the user asked.
		if tc.held {
			env, _, err := Filter(environ, []string{tc.name}, false)
			if err != nil || env[tc.name] != tc.value {
				t.Errorf("--env %s: %v, %q", tc.name, err, env[tc.name])
			}
		}
	}
}

// What a build publishes withholds a secret by its name, its value, or a
// user:password under a credential-like name; a plain setting stays.
func TestSecrets(t *testing.T) {
	env := map[string]string{
		"DIB_DEV_USER_PASSWORD": "hunter2",
		"DIB_MIRROR_LOGIN":      "user:pass",
		"DIB_REPO_URL":          "https://user:token@example.com/repo",
		"DIB_RELEASE":           "bookworm",
	}
	got := Secrets(env)
	for name, want := range map[string]bool{"DIB_DEV_USER_PASSWORD": true, "DIB_MIRROR_LOGIN": true, "DIB_REPO_URL": true, "DIB_RELEASE": false} {
		if got[name] != want {
			t.Errorf("%s: secret %v, want %v", name, got[name], want)
		}
	}
}
