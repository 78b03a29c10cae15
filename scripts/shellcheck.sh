#!/usr/bin/env bash
# Runs shellcheck on dibvm's own shell: the scripts here, the library hooks
# find at $_LIB (guestagent/dibbuild/dib-lib), and the built-in
# elements' hooks and environment.d files (sourced by bash, so checked as
# bash). A hook is any file under elements/library whose first line names
# sh or bash.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v shellcheck >/dev/null 2>&1; then
  echo "shellcheck not found: run scripts/install-deps.sh (apt-get install shellcheck; brew install shellcheck)" >&2
  exit 1
fi

files=""
for f in scripts/*.sh .ci/run guestagent/dibbuild/dib-lib/*; do
  files="$files $f"
done
sourced=""
while IFS= read -r f; do
  case "$f" in
  */environment.d/*) sourced="$sourced $f" ;;
  *)
    if head -n 1 "$f" | grep -Eq '^#!.*\b(ba)?sh\b'; then
      files="$files $f"
    fi
    ;;
  esac
done < <(find elements/library -type f ! -name '*.rst' ! -name '*.yaml' ! -name '*.json' ! -name 'element-*' ! -name 'pkg-map' | LC_ALL=C sort)

# shellcheck disable=SC2086 # the lists are words: no path here has a space
shellcheck --severity=style $files
# shellcheck disable=SC2086
shellcheck --severity=style --shell=bash $sourced
n=$(( $(echo "$files" | wc -w) + $(echo "$sourced" | wc -w) ))
echo "shellcheck: $n files clean"
