#!/usr/bin/env bash
# Measures dibvm's helper VM figures on this machine:
#   - cold appliance build (empty cache: download, verify, assemble) and the
#     cached look-up;
#   - boot to agent ready, median of 5; `dibvm run -- true` wall time;
#   - peak RSS of dibvm and of QEMU;
# for a helper VM of the host's architecture and, side by side, one of the
# other architecture (arm64 on an x86 host), which runs under TCG.
# Run it on an otherwise idle machine: two cores make timings noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
dibvm=${DIBVM:-./bin/dibvm}
runs=${RUNS:-5}

# now is the time in seconds with a fraction: GNU date has %N; macOS's
# date does not, and perl's Time::HiRes stands in.
if [ "$(date +%N)" != N ]; then
  now() { date +%s.%N; }
else
  now() { perl -MTime::HiRes=time -e 'printf "%.6f\n", time'; }
fi
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
export DIBVM_CACHE_DIR=$cache

host_arch=$(uname -m)
case "$host_arch" in
x86_64 | amd64) arches="amd64 arm64" ;;
*) arches="arm64 amd64" ;;
esac

# measure ARCH prints the helper VM's figures for a helper of ARCH, the
# host's own first, then the other one, which runs under TCG.
measure() {
  local arch=$1 t0 cold lookup accel d q
  local lookups=() boots=() walls=() dibvm_rss=0 qemu_rss=0
  t0=$(now)
  "$dibvm" appliance build --arch "$arch" >/dev/null 2>&1
  cold=$(since "$t0")
  for _ in $(seq 10); do
    t0=$(now); "$dibvm" appliance path --arch "$arch" >/dev/null; lookups+=("$(since "$t0")")
  done
  lookup=$(printf '%s\n' "${lookups[@]}" | median)
  for _ in $(seq "$runs"); do
    t0=$(now)
    stats=$("$dibvm" run --arch "$arch" --stats -- true 2>&1 >/dev/null | grep 'dibvm: stats:')
    walls+=("$(since "$t0")")
    boots+=("$(sed -E 's/.*boot=([0-9.]+)s.*/\1/' <<<"$stats")")
    accel=$(sed -E 's/.*accel=([a-z]+).*/\1/' <<<"$stats")
    d=$(sed -E 's/.*dibvm_maxrss=([0-9]+)MiB.*/\1/' <<<"$stats"); [ "$d" -gt "$dibvm_rss" ] && dibvm_rss=$d
    q=$(sed -E 's/.*qemu_maxrss=([0-9]+)MiB.*/\1/' <<<"$stats"); [ "$q" -gt "$qemu_rss" ] && qemu_rss=$q
  done
  printf '%s helper VM (accel %s)\n' "$arch" "$accel"
  printf '  appliance build, cold cache      %8.2f s\n' "$cold"
  printf '  appliance look-up, cached (med)  %8.3f s\n' "$lookup"
  printf '  boot to agent ready (median/%d)   %8.2f s   [%s]\n' "$runs" "$(printf '%s\n' "${boots[@]}" | median)" "${boots[*]}"
  printf '  dibvm run -- true (median/%d)     %8.2f s   [%s]\n' "$runs" "$(printf '%s\n' "${walls[@]}" | median)" "$(printf '%.2f ' "${walls[@]}")"
  printf '  peak RSS: dibvm %d MiB, qemu %d MiB\n' "$dibvm_rss" "$qemu_rss"
}

printf 'dibvm helper VM benchmarks (host %s, %s cores)\n' "$host_arch" "$(getconf _NPROCESSORS_ONLN)"
for arch in $arches; do
  measure "$arch"
done

# The full image build and boot: about an hour under TCG. BENCH_BUILD=0 skips it.
if [ "${BENCH_BUILD:-1}" != 0 ]; then
  scripts/bench-build.sh
fi
