#!/usr/bin/env bash
# Builds the real control plane that the end-to-end tests run: kube-apiserver and
# kube-controller-manager from e2e/controlplane/go.mod, etcd from
# e2e/controlplane/etcd/go.mod.
#
# The binaries go to
#   ${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}/control-plane/<hash>/bin/
# where <hash> covers both modules' go.mod and go.sum and the build recipe below, so
# a change of pinned versions builds afresh and anything else reuses the first build.
# When the binaries are already there nothing is built. The last line of stdout is
# the bin directory; progress goes to stderr.
#
# A cold build takes about 10 minutes on 2 cores (see README) and a few GiB of memory.
# Usage: scripts/build-control-plane.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
modules="$root/e2e/controlplane"

# Change this when the flags below change, so that cached binaries are rebuilt.
recipe="cgo0 trimpath ldflags-s-w version-x p2 v1"

# shellcheck source=scripts/lib-go-build.sh
. "$root/scripts/lib-go-build.sh"
find_go build-control-plane
hash="$(cache_key "$recipe" "$modules/go.mod" "$modules/go.sum" "$modules/etcd/go.mod" "$modules/etcd/go.sum")"
cache="${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}/control-plane"
dest="$cache/$hash"
bin="$dest/bin"
binaries=(etcd kube-apiserver kube-controller-manager)

complete() {
    local b
    for b in "${binaries[@]}"; do
        [ -x "$bin/$b" ] || return 1
    done
}

if complete; then
    echo "$bin"
    exit 0
fi

mkdir -p "$dest"
# One build at a time per hash: a second caller waits, then finds the binaries.
exec 9>"$dest/.lock"
flock 9
if complete; then
    echo "$bin"
    exit 0
fi

staging="$dest/bin.partial"
rm -rf "$staging"
mkdir -p "$staging"

export CGO_ENABLED=0
started=$SECONDS

k8s_version="$(cd "$modules" && "$go" list -m -f '{{.Version}}' k8s.io/kubernetes)"
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"
version_pkg=k8s.io/component-base/version
k8s_ldflags="-s -w -X $version_pkg.gitVersion=$k8s_version -X $version_pkg.gitMajor=1"
k8s_ldflags="$k8s_ldflags -X $version_pkg.gitMinor=$k8s_minor -X $version_pkg.gitTreeState=clean"

for cmd in kube-apiserver kube-controller-manager; do
    echo "build-control-plane: building $cmd $k8s_version" >&2
    (cd "$modules" && "$go" build -p 2 -trimpath -ldflags "$k8s_ldflags" \
        -o "$staging/$cmd" "k8s.io/kubernetes/cmd/$cmd")
done

etcd_version="$(cd "$modules/etcd" && "$go" list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
echo "build-control-plane: building etcd $etcd_version" >&2
(cd "$modules/etcd" && "$go" build -p 2 -trimpath -ldflags "-s -w" \
    -o "$staging/etcd" go.etcd.io/etcd/server/v3)

rm -rf "$bin"
mv "$staging" "$bin"
echo "build-control-plane: built in $((SECONDS - started)) s into $bin" >&2
echo "$bin"
