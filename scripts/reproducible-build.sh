#!/usr/bin/env bash
# Shows that the release binary is reproducible: builds it twice from scratch, into
# target/repro-a and target/repro-b, with the flags of scripts/build-image.sh
# (scripts/lib-release-build.sh), and compares the SHA-256 of the two binaries.
# Exits 1 if they differ. Two cold LTO builds: about 20 minutes on 2 cores.
# Usage: scripts/reproducible-build.sh [--keep]   (--keep: reuse existing target/repro-* dirs)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd -P)"
keep=""
[ "${1:-}" = "--keep" ] && keep=yes

# shellcheck source=scripts/lib-release-build.sh
. scripts/lib-release-build.sh
# Pin the inputs once, so both builds see the same commit and epoch.
POD_HARDENER_GIT_COMMIT="${POD_HARDENER_GIT_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}"
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
export POD_HARDENER_GIT_COMMIT SOURCE_DATE_EPOCH
release_pick_target

declare -A sha secs
for run in a b; do
    dir="$root/target/repro-$run"
    [ -z "$keep" ] && rm -rf "$dir"
    echo "== build $run into target/repro-$run"
    t0=$(date +%s)
    CARGO_TARGET_DIR="$dir" release_build
    secs[$run]=$(( $(date +%s) - t0 ))
    release_check_static "$RELEASE_BIN"
    sha[$run]=$(sha256sum "$RELEASE_BIN" | cut -d' ' -f1)
    echo "build $run: sha256 ${sha[$run]} (${secs[$run]} s)"
done

echo "== $RELEASE_TARGET, commit $POD_HARDENER_GIT_COMMIT"
echo "a  ${sha[a]}  ${secs[a]} s"
echo "b  ${sha[b]}  ${secs[b]} s"
if [ "${sha[a]}" != "${sha[b]}" ]; then
    echo "NOT reproducible: the two builds differ" >&2
    exit 1
fi
echo "reproducible: both builds are identical"
