# dibvm: `make` builds bin/dibvm with the guest agent embedded.
GO      ?= go
# One agent per helper VM architecture: the helper follows the image's
# architecture, whatever the host's.
AGENT_ARCHES := amd64 arm64
AGENTS  := $(foreach a,$(AGENT_ARCHES),host/agentbin/bin/dibvm-agent-linux-$(a))
# The version is host/cli.Version; the commit is the one built from, with
# +dirty for changes not committed (GOFLAGS may turn off Go's own record).
COMMIT  ?= $(shell git describe --always --abbrev=12 --dirty=+dirty --exclude='*' 2>/dev/null)
LDFLAGS := -s -w -X github.com/dibvm/dibvm/host/cli.commit=$(COMMIT)
# The host's packages. The guest's are Linux-only: they are vetted and
# tested on Linux alone.
HOST_PKGS := ./cmd/dibvm ./host/... ./elements/... ./vmimage/... ./guestagent/api
ifeq ($(shell $(GO) env GOOS),linux)
TEST_PKGS := ./...
else
TEST_PKGS := $(HOST_PKGS)
endif

.PHONY: all agent dibvm check test unit fuzz e2e e2e-full dib-functests bench clean FORCE

all: dibvm

# The agent is PID 1 of a Linux guest: static, whatever the host is.
agent: $(AGENTS)
host/agentbin/bin/dibvm-agent-linux-%: FORCE
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -ldflags '-s -w' -o $@ ./cmd/dibvm-agent
	sha256sum $@ > $@.sha256 2>/dev/null || shasum -a 256 $@ > $@.sha256

dibvm: agent
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/dibvm ./cmd/dibvm

# What keeps the code honest without running it: formatting, vet for each
# host dibvm runs on, the macOS build, a tidy go.mod, no Go file over 500
# lines and no function over 80 (TestNoLongFunctions), shellcheck on our
# shell, the host/guest split (the host sees only guestagent/api), and
# that no host package below host/cli reads the process environment.
check: agent
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -l: not formatted:"; echo "$$out"; exit 1; fi
	for arch in amd64 arm64; do \
		GOOS=linux GOARCH=$$arch $(GO) vet ./... && \
		GOOS=linux GOARCH=$$arch $(GO) vet -tags e2e ./cmd/dibvm ./internal/rpmstandin && \
		GOOS=darwin GOARCH=$$arch $(GO) vet $(HOST_PKGS) && \
		GOOS=darwin GOARCH=$$arch $(GO) build -o /dev/null ./cmd/dibvm || exit 1; \
	done
	$(GO) mod tidy -diff
	@big=$$(find . -name '*.go' ! -name '*_test.go' -not -path './.git/*' -exec wc -l {} + | awk '$$2 != "total" && $$1 > 500'); \
		if [ -n "$$big" ]; then echo "Go files over 500 lines (split them by what they do):"; echo "$$big"; exit 1; fi
	scripts/shellcheck.sh
	$(GO) test -count=1 -short -run 'TestHostSeesOnlyTheAPI|TestNoLongFunctions|TestLongFunctionsFindsOne|TestOnlyTheCommandLineReadsTheEnvironment|TestEnvReadsFindsOne' ./cmd/dibvm

# Every tier of tests: unit, VM (they boot the real appliance under
# QEMU), libvirt (the libvirt backend's), and the e2e build of a bootable
# `vm debian devuser` image booted under SeaBIOS and logged into over SSH.
# The appliance is built once (needs the Debian mirror) and cached under
# ~/.cache/dibvm.
test: dibvm fuzz
	$(GO) test -count=1 -timeout 60m $(TEST_PKGS)
	$(MAKE) e2e

# The fuzz targets where the host reads what the guest writes, each run
# for FUZZ_TIME (`make test` runs them briefly; for a longer search:
# make fuzz FUZZ_TIME=5m). Each is package:FuzzName; what a run finds is
# written to the package's testdata/fuzz, and replayed by go test.
# Minimizing each new input for Go's default minute leaves a short run
# stalled; FUZZ_MINIMIZE bounds it.
FUZZ_TIME     ?= 12s
FUZZ_MINIMIZE ?= 1s
FUZZ_TARGETS  := ./guestagent/api:FuzzReadMessage ./host/session:FuzzControlCheckpoints
fuzz:
	for t in $(FUZZ_TARGETS); do \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZ_TIME) -fuzzminimizetime $(FUZZ_MINIMIZE) "$${t%%:*}" || exit 1; \
	done

# The unit tier only (go test -short): no VM, no network.
unit: agent
	$(GO) test -count=1 -short $(TEST_PKGS)

# The e2e tier (-tags e2e): the end-to-end build of a bootable image,
# booted under SeaBIOS: about a quarter of an hour under TCG on a fast
# host, twice that on a slow one.
e2e: dibvm
	$(GO) test -count=1 -timeout 90m -tags e2e -run 'TestE2EBootableBIOS' -v ./cmd/dibvm/

# Every e2e build: also a debian-minimal image with block-device-efi
# booted under OVMF, ubuntu-minimal and ubuntu (from a cloud image) from
# stand-ins for Ubuntu's servers, an arm64 image built in an arm64 helper
# and booted under AAVMF (35 minutes under TCG on an x86 host), a bare
# debian-minimal tree, DIB's Debian functional tests and upstream
# elements (five Debian builds, about 50 minutes), the comparison of
# debootstrap fed by the host with its own, and CentOS from the rpm
# stand-ins: to a tar, from forged repositories, on XFS booted under
# OVMF (11 minutes), and from a cloud image (built, booted, rebuilt from
# checkpoints and fetched, 16 minutes),
# Fedora and openSUSE to tars, and Fedora from a Containerfile through a
# stand-in registry (to a tar, and fedora-container booted, 13 minutes),
# and debian-minimal built reproducibly twice, by two users, from nothing
# and replaying the first's lock file resumed, with the same lock files,
# and booted. Kept out of `make test` so that
# the test suite stays within an hour on a slow host.
e2e-full: dibvm
	$(GO) test -count=1 -timeout 540m -tags e2e -run 'TestE2E' -v ./cmd/dibvm/
	$(GO) test -count=1 -timeout 30m -tags e2e -run 'TestE2E' -v ./internal/rpmstandin/

# DIB's own functional tests (its elements' test-elements, from Debian's
# python3-diskimage-builder) through dibvm, with a table of results: the
# Debian ones, each a real Debian build (6 to 10 minutes under TCG).
# DIB_FUNCTESTS picks tests (ELEMENT/TEST ...); e2e-full runs them all.
DIB_FUNCTESTS ?=
dib-functests: dibvm
	scripts/dib-functests.sh $(DIB_FUNCTESTS)

bench: dibvm
	./scripts/bench.sh

clean:
	rm -rf bin host/agentbin/bin/dibvm-agent-*
