#!/usr/bin/env bash
# Measures a full `dibvm create -o deb vm debian-minimal` on this machine:
#   - wall time with an empty image cache (cold) and again with the cache
#     the first build filled (warm), with the seconds each phase took;
#   - wall time from starting QEMU on the result (SeaBIOS, single-threaded
#     TCG, as the end-to-end tests boot it) to the login prompt on its
#     serial console.
# It takes three quarters of an hour to an hour and a half under TCG,
# depending on the host.
# Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
dibvm=$(realpath "${DIBVM:-./bin/dibvm}")

# now is the time in seconds with a fraction: GNU date has %N; macOS's
# date does not, and perl's Time::HiRes stands in.
if [ "$(date +%N)" != N ]; then
  now() { date +%s.%N; }
else
  now() { perl -MTime::HiRes=time -e 'printf "%.6f\n", time'; }
fi
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DIB_IMAGE_CACHE=$work/image-cache

# phases sums dib-run-parts' profile of each phase in a build log.
phases() {
  awk '/dib-run-parts Target: / { phase = $NF }
       /^dib-run-parts [0-9A-Za-z_-]+ +[0-9]+\.[0-9]+$/ { t[phase] += $NF; if (!(phase in seen)) { seen[phase] = 1; order[++n] = phase } }
       END { for (i = 1; i <= n; i++) printf "      %-16s %8.1f s\n", order[i], t[order[i]] }' "$1"
}

build() { # build NAME: builds into $work/NAME, prints the wall time
  local t0
  t0=$(now)
  if ! "$dibvm" create -o "$work/$1" vm debian-minimal >"$work/$1.log" 2>&1; then
    tail -30 "$work/$1.log" >&2
    echo "bench-build: the $1 build failed" >&2
    exit 1
  fi
  since "$t0"
}

cold=$(build cold)
warm=$(build warm)
cached=$(find "$DIB_IMAGE_CACHE" -type f | wc -l)

serial=$work/serial.log
t0=$(now)
qemu-system-x86_64 -accel tcg,thread=single -m 1024 -smp 2 -nodefaults -display none \
  -serial "file:$serial" -drive "file=$work/cold.qcow2,if=virtio,format=qcow2,snapshot=on" &
qemu=$!
login=
for _ in $(seq 1200); do
  if grep -q 'login:' "$serial" 2>/dev/null; then login=$(since "$t0"); break; fi
  sleep 0.5
done
kill "$qemu" 2>/dev/null; wait "$qemu" 2>/dev/null || true

printf 'dibvm image build benchmarks (%s, %s cores)\n' "$(uname -m)" "$(getconf _NPROCESSORS_ONLN)"
printf '  vm debian-minimal, cold image cache   %8.1f s\n' "$cold"
phases "$work/cold.log"
printf '  vm debian-minimal, warm image cache   %8.1f s   (%d files in the cache)\n' "$warm" "$cached"
phases "$work/warm.log"
printf '  boot of the image to a login prompt   %8s s\n' "${login:-(none within 10 min)}"
