#!/usr/bin/env bash
# Measures dibvm's helper VM figures on this machine:
#   - cold appliance build (empty cache: download, verify, assemble) and the
#     cached look-up;
#   - boot to agent ready, median of 5; `dibvm run -- true` wall time;
#   - peak RSS of dibvm and of QEMU;
#   - the same boot and run by the previous release (BENCH_BASE, default the
#     release v0.1.0, commit 49b628f; BENCH_BASE= skips it), built from a
#     worktree and run alternately with this one;
# for a helper VM of the host's architecture and, side by side, one of the
# other architecture (arm64 on an x86 host), which runs under TCG;
#   - `dibvm run -- true` without a tool layer, with the rpm layer and with
#     the container layer, in turn;
#   - a small image built with and without SOURCE_DATE_EPOCH, in turn;
#   - `dibvm run -- true` through the libvirt backend (a session daemon of
#     the user's, started here if none runs) alternately with QEMU's.
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
base_rev=${BENCH_BASE-49b628f}
if [ -n "$base_rev" ] && ! git rev-parse -q --verify "$base_rev^{commit}" >/dev/null; then
  echo "bench: no commit $base_rev to compare with; skipping the previous release" >&2
  base_rev=
fi
cleanup() {
  if [ -n "$base_rev" ] && [ -d "$cache/base-src" ]; then git worktree remove --force "$cache/base-src" || true; fi
  rm -rf "$cache"
}
trap cleanup EXIT
export DIBVM_CACHE_DIR=$cache
if [ -n "$base_rev" ]; then
  git worktree add -q --detach "$cache/base-src" "$base_rev"
  make -s -C "$cache/base-src" dibvm >/dev/null
  base_bin=$cache/base-src/bin/dibvm
fi

# run_true BINARY ARCH prints the wall time of `run -- true` and its stats line.
run_true() {
  local t0 stats
  t0=$(now)
  stats=$("$1" run --arch "$2" --stats -- true 2>&1 >/dev/null | grep 'dibvm: stats:')
  printf '%s %s\n' "$(since "$t0")" "$stats"
}

host_arch=$(uname -m)
case "$host_arch" in
x86_64 | amd64) arches="amd64 arm64" ;;
*) arches="arm64 amd64" ;;
esac

# measure ARCH prints the helper VM's figures for a helper of ARCH, the
# host's own first, then the other one, which runs under TCG.
measure() {
  local arch=$1 t0 cold lookup accel d q
  local lookups=() boots=() walls=() base_boots=() base_walls=() dibvm_rss=0 qemu_rss=0 out
  t0=$(now)
  "$dibvm" appliance build --arch "$arch" >/dev/null 2>&1
  cold=$(since "$t0")
  if [ -n "$base_rev" ]; then
    "$base_bin" appliance build --arch "$arch" >/dev/null 2>&1
  fi
  for _ in $(seq 10); do
    t0=$(now); "$dibvm" appliance path --arch "$arch" >/dev/null; lookups+=("$(since "$t0")")
  done
  lookup=$(printf '%s\n' "${lookups[@]}" | median)
  for _ in $(seq "$runs"); do
    if [ -n "$base_rev" ]; then
      out=$(run_true "$base_bin" "$arch")
      base_walls+=("${out%% *}")
      base_boots+=("$(sed -E 's/.*boot=([0-9.]+)s.*/\1/' <<<"$out")")
    fi
    out=$(run_true "$dibvm" "$arch")
    stats=${out#* }
    walls+=("${out%% *}")
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
  if [ -n "$base_rev" ]; then
    local bw w
    bw=$(printf '%s\n' "${base_walls[@]}" | median)
    w=$(printf '%s\n' "${walls[@]}" | median)
    printf '  %s, run alternately with it:\n' "$base_rev"
    printf '    boot to agent ready (median/%d) %8.2f s   [%s]\n' "$runs" "$(printf '%s\n' "${base_boots[@]}" | median)" "${base_boots[*]}"
    printf '    dibvm run -- true (median/%d)   %8.2f s   [%s]   this one / it: %s\n' "$runs" "$bw" "$(printf '%.2f ' "${base_walls[@]}")" \
      "$(awk -v a="$w" -v b="$bw" 'BEGIN { printf "%.2f", a / b }')"
  fi
}

# measure_libvirt prints `run -- true` through libvirt beside QEMU, run
# alternately, for a helper of the host's architecture. It needs a session
# daemon: root's libvirt is the system one, which dibvm does not drive.
measure_libvirt() {
  local daemon="" sock="$HOME/.cache/libvirt/libvirt-sock" qs=() ls=() out
  if [ "$(id -u)" = 0 ]; then
    echo "libvirt backend: skipped (run make bench as an ordinary user: root's libvirt is qemu:///system)"
    return
  fi
  if ! [ -S "$sock" ] && ! [ -S "${XDG_RUNTIME_DIR:-/nonexistent}/libvirt/libvirt-sock" ]; then
    if ! command -v libvirtd >/dev/null && ! [ -x /usr/sbin/libvirtd ]; then
      echo "libvirt backend: skipped (no libvirtd; scripts/install-deps.sh installs it)"
      return
    fi
    PATH=$PATH:/usr/sbin libvirtd --timeout 300 >/dev/null 2>&1 &
    daemon=$!
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
  fi
  for _ in $(seq "$runs"); do
    out=$(run_true "$dibvm" "$1"); qs+=("${out%% *}")
    out=$(DIBVM_BACKEND=libvirt run_true "$dibvm" "$1"); ls+=("${out%% *}")
  done
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; fi
  printf 'libvirt backend (qemu:///session), %s helper VM, run alternately with QEMU:\n' "$1"
  printf '  dibvm run -- true, qemu (median/%d)     %8.2f s   [%s]\n' "$runs" "$(printf '%s\n' "${qs[@]}" | median)" "$(printf '%.2f ' "${qs[@]}")"
  printf '  dibvm run -- true, libvirt (median/%d)  %8.2f s   [%s]\n' "$runs" "$(printf '%s\n' "${ls[@]}" | median)" "$(printf '%.2f ' "${ls[@]}")"
}

# initramfs_size ARCH [FLAGS] prints the size `appliance info` gives the
# helper's initramfs.
initramfs_size() {
  "$dibvm" appliance info --arch "$@" 2>/dev/null | sed -n -E 's/^initramfs:.*\(([0-9]+ MiB)\).*/\1/p'
}

# measure_layers prints what each tool layer costs the helper:
# `run -- true` without a layer (as a Debian build boots it), with the
# rpm layer (as a build with an rpm-family element does) and with the
# container layer (as a build with containerfile does), run in turn, and
# each layer's build and the initramfs with it.
measure_layers() {
  local arch=$1 layer t0 out q
  local -A layer_walls=() layer_peak=() layer_built=()
  local layers=(none rpm container)
  for layer in rpm container; do
    t0=$(now)
    "$dibvm" appliance build --arch "$arch" --helper-tools "$layer" >/dev/null 2>&1
    layer_built[$layer]=$(since "$t0")
  done
  for _ in $(seq "$runs"); do
    for layer in "${layers[@]}"; do
      if [ "$layer" = none ]; then
        out=$(run_true "$dibvm" "$arch")
      else
        out=$(DIBVM_HELPER_TOOLS=$layer run_true "$dibvm" "$arch")
      fi
      layer_walls[$layer]+="${out%% *} "
      q=$(sed -E 's/.*qemu_maxrss=([0-9]+)MiB.*/\1/' <<<"$out")
      [ "$q" -gt "${layer_peak[$layer]:-0}" ] && layer_peak[$layer]=$q
    done
  done
  printf 'tool layers, %s helper VM, run in turn:\n' "$arch"
  for layer in "${layers[@]}"; do
    if [ "$layer" = none ]; then
      printf '  no layer: initramfs %s\n' "$(initramfs_size "$arch")"
    else
      printf '  %s layer: initramfs %s, layer build (with the base cached) %.2f s\n' "$layer" \
        "$(initramfs_size "$arch" --helper-tools "$layer")" "${layer_built[$layer]}"
    fi
    # shellcheck disable=SC2086 # each layer's walls are a word list
    printf '    dibvm run -- true (median/%d)  %8.2f s   [%s]  qemu peak RSS %d MiB\n' "$runs" \
      "$(printf '%s\n' ${layer_walls[$layer]} | median)" "${layer_walls[$layer]% }" "${layer_peak[$layer]:-0}"
  done
}

# measure_reproducible prints what a reproducible build costs: the test
# elements' small image (a root copied from the helper, an ESP filled by a
# hook) as raw, qcow2 and tar, built from the start with and without
# SOURCE_DATE_EPOCH, in turn. The difference is the tidying, the copy of
# the finished tree and the filesystems made again from it, and qcow2
# compressed in order on one core.
measure_reproducible() {
  local arch=$1 out t0 plain=() repro=() i
  out=$(mktemp -d)
  for i in $(seq "$runs"); do
    for kind in plain repro; do
      t0=$(now)
      if [ "$kind" = plain ]; then
        env ELEMENTS_PATH=cmd/dibvm/testdata/elements "$dibvm" create -a "$arch" -n --no-checkpoints --progress plain \
          -t raw,qcow2,tar -o "$out/$kind$i" run-to-run block-device-efi >/dev/null 2>&1
        plain+=("$(since "$t0")")
      else
        env ELEMENTS_PATH=cmd/dibvm/testdata/elements SOURCE_DATE_EPOCH=1700000000 "$dibvm" create -a "$arch" -n --no-checkpoints \
          --progress plain -t raw,qcow2,tar -o "$out/$kind$i" run-to-run block-device-efi >/dev/null 2>&1
        repro+=("$(since "$t0")")
      fi
    done
  done
  rm -rf "$out"
  printf 'reproducible builds, %s helper VM, the test elements to raw, qcow2 and tar, in turn:\n' "$arch"
  printf '  without SOURCE_DATE_EPOCH (median/%d)  %8.2f s   [%s]\n' "$runs" "$(printf '%s\n' "${plain[@]}" | median)" "$(printf '%.2f ' "${plain[@]}")"
  printf '  with SOURCE_DATE_EPOCH (median/%d)     %8.2f s   [%s]\n' "$runs" "$(printf '%s\n' "${repro[@]}" | median)" "$(printf '%.2f ' "${repro[@]}")"
}

printf 'dibvm helper VM benchmarks (host %s, %s cores)\n' "$host_arch" "$(getconf _NPROCESSORS_ONLN)"
for arch in $arches; do
  measure "$arch"
done
measure_layers "${arches%% *}"
measure_reproducible "${arches%% *}"
measure_libvirt "${arches%% *}"

# The full image build and boot: about an hour under TCG. BENCH_BUILD=0 skips it.
if [ "${BENCH_BUILD:-1}" != 0 ]; then
  scripts/bench-build.sh
fi
