#!/usr/bin/env bash
# Builds the CNCF distribution registry (e2e/registry: github.com/distribution/distribution/v3 at
# the version pinned there) that the image lookup tests (tests/registry.rs) run on 127.0.0.1.
#
# The binary goes to ${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}/registry/<hash>/bin/registry,
# where <hash> covers go.mod, go.sum and the build recipe below: a change of the pinned version
# builds afresh, anything else reuses the first build. The last line of stdout is the bin
# directory; progress goes to stderr. Go builds take turns through the machine-wide lock shared
# with the other build scripts. A cold build takes about 2 minutes on 2 cores.
# Usage: scripts/build-registry.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
module_dir="$root/e2e/registry"
# Change this when the flags below change, so that a cached binary is rebuilt.
recipe="cgo0 trimpath ldflags-s-w p2 v1"

# shellcheck source=scripts/lib-go-build.sh
. "$root/scripts/lib-go-build.sh"
find_go build-registry
hash="$(cache_key "$recipe" "$module_dir/go.mod" "$module_dir/go.sum")"
cache_root="${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}"
bin="$cache_root/registry/$hash/bin"
if [ -x "$bin/registry" ]; then
    echo "$bin"
    exit 0
fi

mkdir -p "$bin"
# One build per hash at a time: a second caller waits, then finds the binary.
exec 9>"$bin/../.lock"
flock 9
if [ ! -x "$bin/registry" ]; then
    pkg="$(sed -n 's/^tool \(.*\)$/\1/p' "$module_dir/go.mod")"
    version="$(cd "$module_dir" && "$go" list -m -f '{{.Version}}' github.com/distribution/distribution/v3)"
    echo "build-registry: building $pkg $version" >&2
    started=$SECONDS
    (cd "$module_dir" && CGO_ENABLED=0 flock "$cache_root/go-build.lock" \
        "$go" build -p 2 -trimpath \
        -ldflags "-s -w -X github.com/distribution/distribution/v3/version.version=$version" \
        -o "$bin/registry.partial" "$pkg")
    mv "$bin/registry.partial" "$bin/registry"
    echo "build-registry: built in $((SECONDS - started)) s into $bin" >&2
fi
echo "$bin"
