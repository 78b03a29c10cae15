package build

import (
	"reflect"
	"strings"
	"testing"
)

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
	env, withheld, err := hookEnv(caller, nil, false)
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
	env, withheld, err = hookEnv(caller, []string{"GITHUB_TOKEN", "EXTRA=1=2", "FROM_HERE"}, true)
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
		if _, _, err := hookEnv(nil, []string{in}, false); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--env") {
			t.Errorf("--env %q: %v, want an error saying %q", in, err, want)
		}
	}
}
