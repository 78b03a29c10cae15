#!/usr/bin/env bash
# Runs DIB's functional tests (its elements' test-elements) through dibvm,
# the way DIB's own tests/run_functests.sh runs them through
# disk-image-create, and prints a table of results.
#
#   scripts/dib-functests.sh [-b DIBVM] [-d DIB_ELEMENTS] [ELEMENT/TEST ...]
#
# DIB_ELEMENTS is DIB's elements directory (default: Debian's
# python3-diskimage-builder's). Without tests named, it runs those that
# apply to what dibvm builds, the Debian ones, and lists the others with
# why they are not run. Each test is a build of ELEMENT and TEST with
# ELEMENTS_PATH set to ELEMENT's test-elements (then the caller's
# ELEMENTS_PATH): no base element (-n), output type tar unless the test
# names others in its test-output-formats file.
#
# A test that must fail says so as in DIB: its hook writes
# /tmp/dib-test-should-fail in the image and fails. DIB's harness finds
# the marker with break=after-error and a break_cmd; dibvm opens its
# after-error shell on stdin, so the harness gives that shell the command
# that looks for the marker. A build that fails with the marker passes;
# one that succeeds with the marker in its tar fails.
#
# The exit status is 0 only if every test run passed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dibvm=$here/../bin/dibvm
dib_elements=/usr/lib/python3/dist-packages/diskimage_builder/elements
while getopts b:d: opt; do
  case $opt in
    b) dibvm=$OPTARG ;;
    d) dib_elements=$OPTARG ;;
    *) echo "usage: $0 [-b DIBVM] [-d DIB_ELEMENTS] [ELEMENT/TEST ...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

if [ ! -x "$dibvm" ]; then
  echo "dib-functests: no dibvm at $dibvm: run make first, or name one with -b" >&2
  exit 2
fi
if [ ! -d "$dib_elements" ]; then
  echo "dib-functests: DIB's elements are not at $dib_elements: install Debian's python3-diskimage-builder (scripts/install-deps.sh does), or name the directory with -d" >&2
  exit 2
fi

# The tests that apply: Debian's, which reach nothing but Debian's archive.
applicable=(debian-minimal/stable-build-succeeds debian/build-succeeds)

# why_not says why a test of DIB's is not run here.
why_not() {
  case $1 in
    debian-minimal/stable-vm) echo "fails in DIB as in dibvm: it pulls in vm without naming it, and DIB adds block-device-mbr (which vm's block-device dependency needs) only for a vm named on the command line; DIB master removed the test (27feef8a)" ;;
    debian-minimal/testing-build-succeeds) echo "fails in DIB as in dibvm: debian-minimal's environment.d/10-debian-minimal.bash sets the apt sources from DIB_RELEASE before the test's 10-set-distro.bash makes it testing, so debootstrap lays down testing and apt then resolves against stable; DIB master removed the test (27feef8a)" ;;
    ubuntu*/*) echo "needs Ubuntu's servers, which builds here do not reach" ;;
    apt-sources/test-sources) echo "builds on ubuntu-minimal and openstack-ci-mirrors: Ubuntu's and OpenStack's servers" ;;
    containerfile/* | pip-and-virtualenv/*-ubuntu | python-stow-versions/*) echo "builds on Ubuntu" ;;
    *) echo "not a Debian build" ;;
  esac
}

tests=("$@")
if [ ${#tests[@]} = 0 ]; then
  tests=("${applicable[@]}")
  for d in "$dib_elements"/*/test-elements/*/; do
    t=${d#"$dib_elements"/}
    t=${t%/}
    t=${t/\/test-elements\//\/}
    case " ${applicable[*]} " in
      *" $t "*) ;;
      *) printf 'not run: %s: %s\n' "$t" "$(why_not "$t")" ;;
    esac
  done
fi

# The after-error shell's commands: the marker is in the image's /tmp,
# seen from the chroot or from beside it, whichever the shell is in.
# shellcheck disable=SC2016 # expanded by the shell in the VM, not here
marker_check='if [ -e /tmp/dib-test-should-fail ] || [ -e "${TMP_MOUNT_PATH:-/nonexistent}/tmp/dib-test-should-fail" ]; then echo "dib-functests: found /tmp/dib-test-should-fail"; fi; exit 0'

results=()
failed=0
dest=
trap 'rm -rf "$dest"' EXIT
for t in "${tests[@]}"; do
  element=${t%%/*}
  test_element=${t#*/}
  dir=$dib_elements/$element/test-elements/$test_element
  if [ ! -d "$dir" ]; then
    echo "dib-functests: no test $t: $dir does not exist" >&2
    results+=("$t FAIL 0s")
    failed=1
    continue
  fi
  types=tar
  if [ -f "$dir/test-output-formats" ]; then
    types=$(tr -s ' \n' ',' <"$dir/test-output-formats" | sed 's/^,//; s/,$//')
  fi
  dest=$(mktemp -d)
  log=$dest/build.log
  start=$SECONDS
  echo "=== $t (-t $types)"
  status=0
  printf '%s\n' "$marker_check" |
    break=after-error ELEMENTS_PATH="$dib_elements/$element/test-elements${ELEMENTS_PATH:+:$ELEMENTS_PATH}" \
      "$dibvm" create -n -t "$types" -o "$dest/image" "$element" "$test_element" >"$log" 2>&1 || status=$?
  sed "s|^|[$t] |" "$log"
  result=FAIL
  if [ "$status" = 0 ]; then
    if [[ ,$types, != *,tar,* ]]; then
      result=PASS
    elif [ ! -f "$dest/image.tar" ]; then
      echo "[$t] dib-functests: the build succeeded but wrote no $dest/image.tar"
    elif tar -tf "$dest/image.tar" | grep -q 'tmp/dib-test-should-fail$'; then
      echo "[$t] dib-functests: the build should have failed, but passed"
    else
      result=PASS
    fi
  elif grep -q 'dib-functests: found /tmp/dib-test-should-fail' "$log"; then
    result=PASS
    echo "[$t] dib-functests: the build failed, as the test wants"
  fi
  [ "$result" = PASS ] || failed=1
  results+=("$t $result $((SECONDS - start))s")
  rm -rf "$dest"
done

echo
printf '%-45s %-6s %s\n' TEST RESULT TIME
for r in "${results[@]}"; do
  read -r name res took <<<"$r"
  printf '%-45s %-6s %s\n' "$name" "$res" "$took"
done
exit "$failed"
