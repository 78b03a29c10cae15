#!/usr/bin/env bash
# Installs what dibvm needs on the host to build and to run its tests:
# QEMU (system emulator and qemu-img), OVMF for UEFI boot tests, and the
# small tools the tests use to inspect images without mounting them.
#
# As root on Debian or Ubuntu it installs them with apt. Anywhere else it
# prints what to install and exits non-zero if something is missing.
set -euo pipefail

debian_pkgs=(qemu-system-x86 qemu-utils ovmf fdisk e2fsprogs squashfs-tools ca-certificates curl make tmux openssh-client)
mac_pkgs=(qemu)

missing() {
  local m=()
  command -v qemu-system-x86_64 >/dev/null 2>&1 || command -v qemu-system-aarch64 >/dev/null 2>&1 || m+=(qemu-system)
  command -v qemu-img >/dev/null 2>&1 || m+=(qemu-img)
  command -v go >/dev/null 2>&1 || m+=(go)
  command -v make >/dev/null 2>&1 || m+=(make)
  printf '%s\n' "${m[@]}"
}

case "$(uname -s)" in
Linux)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    # --no-install-recommends: a recommended systemd-resolved would replace
    # /etc/resolv.conf with a link that dangles where systemd is not PID 1.
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${debian_pkgs[@]}" >/dev/null
  elif [ -n "$(missing)" ]; then
    echo "dibvm needs: $(missing | tr '\n' ' ')" >&2
    echo "install them as root, e.g.: apt-get install --no-install-recommends ${debian_pkgs[*]}" >&2
    exit 1
  fi
  ;;
Darwin)
  if [ -n "$(missing)" ]; then
    echo "dibvm needs: $(missing | tr '\n' ' ')" >&2
    echo "install them with: brew install ${mac_pkgs[*]} go" >&2
    exit 1
  fi
  ;;
*)
  echo "unsupported host $(uname -s): dibvm runs on Linux and macOS" >&2
  exit 1
  ;;
esac

if ! command -v go >/dev/null 2>&1; then
  echo "dibvm needs Go 1.24 or newer: https://go.dev/dl/" >&2
  exit 1
fi
m=$(missing)
if [ -n "$m" ]; then
  echo "still missing after install: $m" >&2
  exit 1
fi
echo "dependencies ready: $(qemu-system-x86_64 --version 2>/dev/null | head -1 || qemu-system-aarch64 --version | head -1)"
