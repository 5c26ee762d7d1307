#!/usr/bin/env bash
# Builds the peers that benches/peers.sh measures pod-hardener against, each from its published
# Go module at the version pinned under benches/peers/<name>/go.mod:
#   benches/peers/psa         Kubernetes' standalone Pod Security Admission webhook
#                             (k8s.io/pod-security-admission/cmd/webhook), as pod-security-webhook
#   benches/peers/gatekeeper  OPA Gatekeeper (github.com/open-policy-agent/gatekeeper/v3), as
#                             gatekeeper
#
# The binaries go to ${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}/peers/<hash>/bin/, where
# <hash> covers both modules' go.mod and go.sum and the build recipe below: a change of a pinned
# version builds afresh, anything else reuses the first build. The last line of stdout is the bin
# directory; progress goes to stderr. Go builds take turns through the machine-wide lock shared
# with the other build scripts. Cold, on 2 cores: a few minutes for the PSA webhook, about ten
# for Gatekeeper.
# Usage: scripts/build-peers.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
modules="$root/benches/peers"
# Change this when the flags below change, so that cached binaries are rebuilt.
recipe="cgo0 trimpath ldflags-s-w p2 v1"

# shellcheck source=scripts/lib-go-build.sh
. "$root/scripts/lib-go-build.sh"
find_go build-peers
hash="$(cache_key "$recipe" "$modules/psa/go.mod" "$modules/psa/go.sum" \
    "$modules/gatekeeper/go.mod" "$modules/gatekeeper/go.sum")"
cache_root="${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}"
bin="$cache_root/peers/$hash/bin"
# binary name -> the module directory whose `tool` directive names its package
declare -A module_of=([pod-security-webhook]=psa [gatekeeper]=gatekeeper)

complete() {
    local b
    for b in "${!module_of[@]}"; do
        [ -x "$bin/$b" ] || return 1
    done
}

if complete; then
    echo "$bin"
    exit 0
fi

mkdir -p "$bin"
# One build per hash at a time: a second caller waits, then finds the binaries.
exec 9>"$bin/../.lock"
flock 9
for name in pod-security-webhook gatekeeper; do
    [ -x "$bin/$name" ] && continue
    module_dir="$modules/${module_of[$name]}"
    pkg="$(sed -n 's/^tool \(.*\)$/\1/p' "$module_dir/go.mod")"
    version="$(cd "$module_dir" && "$go" list -f '{{.Module.Version}}' "$pkg")"
    echo "build-peers: building $pkg $version" >&2
    started=$SECONDS
    (cd "$module_dir" && CGO_ENABLED=0 flock "$cache_root/go-build.lock" \
        "$go" build -p 2 -trimpath -ldflags "-s -w" -o "$bin/$name.partial" "$pkg")
    mv "$bin/$name.partial" "$bin/$name"
    echo "build-peers: built $name in $((SECONDS - started)) s into $bin" >&2
done
echo "$bin"
