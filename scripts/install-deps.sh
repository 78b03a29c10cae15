#!/usr/bin/env bash
# Installs what dibvm needs on the host to build and to run its tests:
# QEMU (the x86 and arm64 system emulators, since the helper VM follows the
# image's architecture, and qemu-img), UEFI firmware for both for the boot
# tests, shellcheck for `make check`, the small tools the tests use to
# inspect images without mounting them, and libvirt's daemon with its QEMU
# driver for the libvirt backend's tests (they start a session daemon for
# a test user themselves; nothing here starts a system daemon), and
# OpenSSH's server for the remote libvirt test, and DIB itself (Debian's
# python3-diskimage-builder), whose elements and test elements the tests
# build with dibvm.
#
# As root on Debian or Ubuntu it installs them with apt; on macOS with
# Homebrew. Anywhere else it prints what to install and exits non-zero if
# something is missing.
#
# It runs under macOS's bash 3.2 too: no associative arrays, and no
# "${a[@]}" of an empty array under set -u (3.2 calls that unbound).
set -euo pipefail

debian_pkgs=(qemu-system-x86 qemu-system-arm qemu-utils ovmf qemu-efi-aarch64
  fdisk e2fsprogs squashfs-tools ca-certificates curl make tmux openssh-client shellcheck docker-registry
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients openssh-server
  python3-diskimage-builder rpm createrepo-c gpg gpg-agent dosfstools mtools)
mac_pkgs=(qemu shellcheck)

# missing prints, one a line, what is still missing.
missing() {
  local m=""
  command -v qemu-system-x86_64 >/dev/null 2>&1 || command -v qemu-system-aarch64 >/dev/null 2>&1 || m="$m qemu-system"
  command -v qemu-img >/dev/null 2>&1 || m="$m qemu-img"
  command -v go >/dev/null 2>&1 || m="$m go"
  command -v make >/dev/null 2>&1 || m="$m make"
  command -v shellcheck >/dev/null 2>&1 || m="$m shellcheck"
  for w in $m; do echo "$w"; done
}

case "$(uname -s)" in
Linux)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    # --no-install-recommends: a recommended systemd-resolved would replace
    # /etc/resolv.conf with a link that dangles where systemd is not PID 1.
    apt-get update -qq
    # openssh-server is for the remote libvirt test, which runs an sshd of
    # its own on 127.0.0.1: policy-rc.d keeps apt from starting the
    # system's.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${debian_pkgs[@]}" >/dev/null
  elif [ -n "$(missing)" ]; then
    echo "dibvm needs: $(missing | tr '\n' ' ')" >&2
    echo "install them as root, e.g.: apt-get install --no-install-recommends ${debian_pkgs[*]}" >&2
    exit 1
  fi
  ;;
Darwin)
  if [ -n "$(missing)" ]; then
    if command -v brew >/dev/null 2>&1; then
      brew install "${mac_pkgs[@]}"
    else
      echo "dibvm needs: $(missing | tr '\n' ' ')" >&2
      echo "install them with Homebrew (https://brew.sh): brew install ${mac_pkgs[*]} go" >&2
      exit 1
    fi
  fi
  ;;
*)
  echo "unsupported host $(uname -s): dibvm runs on Linux and macOS" >&2
  exit 1
  ;;
esac

if ! command -v go >/dev/null 2>&1; then
  echo "dibvm needs Go 1.26 or newer: https://go.dev/dl/" >&2
  exit 1
fi
m=$(missing)
if [ -n "$m" ]; then
  echo "still missing after install: $m" >&2
  exit 1
fi
for q in qemu-system-x86_64 qemu-system-aarch64; do
  if command -v "$q" >/dev/null 2>&1; then
    echo "dependencies ready: $("$q" --version | head -1) ($q)"
  fi
done
