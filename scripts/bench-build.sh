#!/usr/bin/env bash
# Measures full `dibvm create -o deb vm debian-minimal bench-step` builds on
# this machine, side by side in one run:
#   - the cold build: empty image cache, no checkpoints;
#   - the same cold build by the previous release (BENCH_BASE, default the
#     release v0.1.0, commit 49b628f; BENCH_BASE= skips it), from a worktree
#     built here, alternating with this one's cold build when
#     BENCH_ROUNDS > 1;
#   - the rebuild with nothing changed (also by the previous release, from
#     its own checkpoints), and the rebuild after changing the
#     install.d hook of bench-step, a one-hook test element, each as wall
#     time and as a ratio to the cold build;
#   - a second runner: the cold build's checkpoints pushed to a registry on
#     127.0.0.1 (Debian's docker-registry; skipped without it), then the
#     same build with an empty cache of its own (appliance, packages,
#     checkpoints) that pulls them, as wall time and as a ratio to the cold
#     build;
#   - the seconds each phase took, and the time from starting QEMU on the
#     image (SeaBIOS, single-threaded TCG) to its login prompt.
# BENCH_LOGS=DIR keeps each build's log there, with dib-run-parts' time
# for every hook.
# A cold build takes 15-35 minutes under TCG, depending on the host; the
# whole run about an hour per round. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
dibvm=$(realpath "${DIBVM:-./bin/dibvm}")
rounds=${BENCH_ROUNDS:-1}
base_rev=${BENCH_BASE-49b628f}
if [ -n "$base_rev" ] && ! git rev-parse -q --verify "$base_rev^{commit}" >/dev/null; then
  echo "bench-build: no commit $base_rev to compare with; skipping the previous release" >&2
  base_rev=
fi

# now is the time in seconds with a fraction: GNU date has %N; macOS's
# date does not, and perl's Time::HiRes stands in.
if [ "$(date +%N)" != N ]; then
  now() { date +%s.%N; }
else
  now() { perl -MTime::HiRes=time -e 'printf "%.6f\n", time'; }
fi
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

work=$(mktemp -d)
registry=
cleanup() {
  if [ -n "$registry" ]; then kill "$registry" 2>/dev/null || true; fi
  if [ -n "${BENCH_LOGS:-}" ] && mkdir -p "$BENCH_LOGS"; then cp "$work"/*.log "$BENCH_LOGS"/ 2>/dev/null || true; fi
  if [ -n "$base_rev" ] && [ -d "$work/base" ]; then git worktree remove --force "$work/base" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# bench-step: one install.d hook, the kind of element people iterate on.
mkdir -p "$work/elements/bench-step/install.d"
printf '%s\n' '#!/bin/bash' 'set -eu' 'echo "bench step 1" > /etc/bench-step' >"$work/elements/bench-step/install.d/50-bench-step"
chmod +x "$work/elements/bench-step/install.d/50-bench-step"
export ELEMENTS_PATH=$work/elements

# unstamp takes off the time dibvm's plain output starts each line with,
# as DIB's does (v0.1.0's lines have none).
unstamp() { sed 's/^[0-9-]* [0-9:.]* | //' "$@"; }

# phases sums dib-run-parts' profile of each phase in a build log.
phases() {
  unstamp "$1" | awk '/dib-run-parts Target: / { phase = $NF }
       /^dib-run-parts [0-9A-Za-z_-]+ +[0-9]+\.[0-9]+$/ { t[phase] += $NF; if (!(phase in seen)) { seen[phase] = 1; order[++n] = phase } }
       END { for (i = 1; i <= n; i++) printf "      %-16s %8.1f s\n", order[i], t[order[i]] }'
}

# build BIN NAME [VAR=VALUE...]: builds into $work/NAME/ with BIN, prints
# the wall time. The image cache and the checkpoints are the run's own.
build() {
  local bin=$1 name=$2 t0
  shift 2
  t0=$(now)
  # One image name for all: hooks see it (IMAGE_NAME), so it is in the key.
  if ! env "$@" "$bin" create -o "$work/$name/deb" vm debian-minimal bench-step >"$work/$name.log" 2>&1; then
    tail -30 "$work/$name.log" >&2
    echo "bench-build: the $name build failed" >&2
    exit 1
  fi
  since "$t0"
}

if [ -n "$base_rev" ]; then
  git worktree add -q --detach "$work/base" "$base_rev"
  make -s -C "$work/base" dibvm >/dev/null
  base_bin=$work/base/bin/dibvm
  # Its own helper appliance, built before anything is timed.
  "$base_bin" run -- true >/dev/null 2>&1
fi
"$dibvm" run -- true >/dev/null 2>&1

colds=() bases=()
for r in $(seq "$rounds"); do
  colds+=("$(build "$dibvm" "cold$r" DIB_IMAGE_CACHE="$work/cache$r" DIBVM_CHECKPOINTS_DIR="$work/checkpoints$r")")
  if [ -n "$base_rev" ]; then
    bases+=("$(build "$base_bin" "base$r" DIB_IMAGE_CACHE="$work/cache-base$r" DIBVM_CHECKPOINTS_DIR="$work/checkpoints-base$r")")
  fi
done
cold=$(printf '%s\n' "${colds[@]}" | median)
store=$work/checkpoints$rounds
nothing=$(build "$dibvm" nothing DIB_IMAGE_CACHE="$work/cache$rounds" DIBVM_CHECKPOINTS_DIR="$store")
# The previous release's rebuild from its own checkpoints, where it keeps
# any (v0.1.0 keeps none: its rebuild is another cold build).
if [ -n "$base_rev" ]; then
  base_nothing=$(build "$base_bin" base-nothing DIB_IMAGE_CACHE="$work/cache-base$rounds" DIBVM_CHECKPOINTS_DIR="$work/checkpoints-base$rounds")
fi
# The second runner, where docker-registry is installed.
if command -v docker-registry >/dev/null; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s, secret: bench}\n' \
    "$work/registry" "$port" >"$work/registry.yml"
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  registry=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  ssh-keygen -q -t ed25519 -N '' -C bench@example.com -f "$work/cache-key"
  echo "bench@example.com $(cat "$work/cache-key.pub")" >"$work/cache-trust"
  # The cold build's checkpoints (the rebuild with nothing changed kept
  # none of its own).
  t0=$(now)
  DIBVM_CHECKPOINTS_DIR="$store" "$dibvm" cache push --remote "127.0.0.1:$port/dibvm/cache" --cache-sign "$work/cache-key" >"$work/push.log" 2>&1
  push=$(since "$t0")
  mkdir -p "$work/runner2"
  # What the host's hypervisor did is the host's, not the cache's.
  user_cache=${XDG_CACHE_HOME:-$HOME/.cache}
  if [ "$(uname)" = Darwin ]; then user_cache=$HOME/Library/Caches; fi
  memo=${DIBVM_ACCEL_MEMO:-${DIBVM_CACHE_DIR:-$user_cache/dibvm}/accel-memo.json}
  second=$(build "$dibvm" runner2 DIBVM_CACHE_DIR="$work/runner2/cache" DIB_IMAGE_CACHE="$work/runner2/images" DIBVM_ACCEL_MEMO="$memo" \
    DIBVM_CHECKPOINTS_DIR="$work/runner2/checkpoints" DIBVM_CACHE_FROM="127.0.0.1:$port/dibvm/cache" DIBVM_CACHE_TRUST="$work/cache-trust")
  pushed=$(du -sm "$work/registry" | cut -f1)
fi
sed -i 's/bench step 1/bench step 2/' "$work/elements/bench-step/install.d/50-bench-step"
hook=$(build "$dibvm" hook DIB_IMAGE_CACHE="$work/cache$rounds" DIBVM_CHECKPOINTS_DIR="$store")
kept=$(du -sm "$store" | cut -f1)

serial=$work/serial.log
t0=$(now)
qemu-system-x86_64 -accel tcg,thread=single -m 1024 -smp 2 -nodefaults -display none \
  -serial "file:$serial" -drive "file=$work/cold$rounds/deb.qcow2,if=virtio,format=qcow2,snapshot=on" &
qemu=$!
login=
for _ in $(seq 1200); do
  if grep -q 'login:' "$serial" 2>/dev/null; then login=$(since "$t0"); break; fi
  sleep 0.5
done
kill "$qemu" 2>/dev/null; wait "$qemu" 2>/dev/null || true

printf 'dibvm image build benchmarks (%s, %s cores; vm debian-minimal bench-step)\n' "$(uname -m)" "$(getconf _NPROCESSORS_ONLN)"
printf '  cold build (median of %d)                %8.1f s   [%s]\n' "$rounds" "$cold" "${colds[*]}"
phases "$work/cold$rounds.log"
if [ -n "$base_rev" ]; then
  base=$(printf '%s\n' "${bases[@]}" | median)
  printf '  cold build by %-12s (median)     %8.1f s   [%s]   this one / it: %s\n' "$base_rev" "$base" "${bases[*]}" "$(ratio "$cold" "$base")"
  phases "$work/base$rounds.log"
fi
printf '  rebuild, nothing changed                 %8.1f s   / cold: %s\n' "$nothing" "$(ratio "$nothing" "$cold")"
unstamp "$work/nothing.log" | grep '^dibvm: \(resuming\|no checkpoint\)' | sed 's/^/      /'
if [ -n "$base_rev" ]; then
  printf '  rebuild, nothing changed, by %-12s %8.1f s   / its cold: %s   this one / it: %s\n' "$base_rev" "$base_nothing" "$(ratio "$base_nothing" "$base")" "$(ratio "$nothing" "$base_nothing")"
  unstamp "$work/base-nothing.log" | grep '^dibvm: \(resuming\|no checkpoint\)' | sed 's/^/      /' || true
fi
printf '  rebuild, one install.d hook changed      %8.1f s   / cold: %s\n' "$hook" "$(ratio "$hook" "$cold")"
unstamp "$work/hook.log" | grep '^dibvm: \(resuming\|no checkpoint\)' | sed 's/^/      /'
phases "$work/hook.log"
if [ -n "$registry" ]; then
  printf '  push of the cold build to a registry      %8.1f s   (%d MiB in the registry)\n' "$push" "$pushed"
  printf '  second runner, empty cache, pulling       %8.1f s   / cold: %s\n' "$second" "$(ratio "$second" "$cold")"
  unstamp "$work/runner2.log" | grep '^dibvm: \(resuming\|no checkpoint\|took\|the shared\)' | sed 's/^/      /'
else
  echo "  second runner: skipped (no docker-registry; scripts/install-deps.sh installs it)"
fi
printf '  checkpoints kept                         %8d MiB\n' "$kept"
DIBVM_CHECKPOINTS_DIR="$store" "$dibvm" cache ls | cut -c1-200 | sed 's/^/      /'
printf '  boot of the image to a login prompt      %8s s\n' "${login:-(none within 10 min)}"
