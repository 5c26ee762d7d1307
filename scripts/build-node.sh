#!/usr/bin/env bash
# Builds the real node that the end-to-end node tests run beside the control plane
# (scripts/build-control-plane.sh), every binary from a published Go module at a pinned version:
#   e2e/node/go.mod             kubelet, kube-scheduler, kubectl    (k8s.io/kubernetes)
#   e2e/node/containerd/go.mod  containerd, containerd-shim-runc-v2, ctr
#   e2e/node/runc/go.mod        runc, with cgo and libseccomp (seccomp profiles are enforced)
#   e2e/node/cni/go.mod         the CNI plugins bridge, host-local and loopback
#
# The binaries go to
#   ${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}/node/<hash>/bin/
# where <hash> covers the four modules' go.mod and go.sum and the build recipe below, so a change
# of pinned versions builds afresh and anything else reuses the first build. When the binaries are
# already there nothing is built. The last line of stdout is the bin directory; progress and the
# time each binary took go to stderr.
#
# Every `go build` holds $HOME/.cache/pod-hardener/go-build.lock, so that two cold Go builds (this
# one, the control plane's, helm's...) never share the 2 cores at once.
# Installs what it lacks from Debian's packages (gcc, pkg-config and libseccomp-dev for runc).
# Usage: scripts/build-node.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
modules="$root/e2e/node"

# Change this when the flags below change, so that cached binaries are rebuilt.
recipe="k8s-cgo0 containerd-cgo0-no_btrfs-no_devmapper runc-cgo1-seccomp trimpath ldflags-s-w p2 v1"

if command -v go >/dev/null 2>&1; then
    go=go
elif [ -x /usr/local/go/bin/go ]; then
    go=/usr/local/go/bin/go
else
    echo "build-node: no Go toolchain (go on PATH or /usr/local/go/bin/go)" >&2
    exit 1
fi

hash="$(
    {
        echo "$recipe"
        for module in . containerd runc cni; do
            cat "$modules/$module/go.mod" "$modules/$module/go.sum"
        done
    } | sha256sum | cut -c1-16
)"
cache_root="${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}"
dest="$cache_root/node/$hash"
bin="$dest/bin"
binaries=(kubelet kube-scheduler kubectl containerd containerd-shim-runc-v2 ctr runc
    bridge host-local loopback)

complete() {
    local b
    for b in "${binaries[@]}"; do
        [ -x "$bin/$b" ] || return 1
    done
}

# What the node tests run beside the binaries (tests/common/sandbox.rs, node.rs): ip, unshare,
# mount, tar. Checked before the cache, since a cached build on a new machine needs them too.
runtime_pkgs=()
command -v ip >/dev/null 2>&1 || runtime_pkgs+=(iproute2)
command -v unshare >/dev/null 2>&1 || runtime_pkgs+=(util-linux)
command -v tar >/dev/null 2>&1 || runtime_pkgs+=(tar)
if [ ${#runtime_pkgs[@]} -gt 0 ]; then
    echo "build-node: installing ${runtime_pkgs[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${runtime_pkgs[@]}" >/dev/null
fi

if complete; then
    echo "$bin"
    exit 0
fi

# runc's seccomp support links libseccomp through cgo.
need_pkgs=()
command -v gcc >/dev/null 2>&1 || need_pkgs+=(gcc libc6-dev)
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
[ -e /usr/include/seccomp.h ] || need_pkgs+=(libseccomp-dev)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "build-node: installing ${need_pkgs[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
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
go_lock="$HOME/.cache/pod-hardener/go-build.lock"
mkdir -p "$(dirname "$go_lock")"
started=$SECONDS

# build MODULE_DIR OUTPUT PACKAGE [go build flags...]: one binary, under the machine-wide Go lock.
build() {
    local module="$1" output="$2" package="$3"
    shift 3
    local t0=$SECONDS
    echo "build-node: building $output ($package)" >&2
    (cd "$modules/$module" && flock "$go_lock" "$go" build -p 2 -trimpath "$@" \
        -o "$staging/$output" "$package")
    echo "build-node: $output took $((SECONDS - t0)) s" >&2
}

k8s_version="$(cd "$modules" && "$go" list -m -f '{{.Version}}' k8s.io/kubernetes)"
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"
version_pkg=k8s.io/component-base/version
k8s_ldflags="-s -w -X $version_pkg.gitVersion=$k8s_version -X $version_pkg.gitMajor=1"
k8s_ldflags="$k8s_ldflags -X $version_pkg.gitMinor=$k8s_minor -X $version_pkg.gitTreeState=clean"
for cmd in kubelet kube-scheduler kubectl; do
    CGO_ENABLED=0 build . "$cmd" "k8s.io/kubernetes/cmd/$cmd" -ldflags "$k8s_ldflags"
done

containerd_module=github.com/containerd/containerd/v2
containerd_version="$(cd "$modules/containerd" && "$go" list -m -f '{{.Version}}' "$containerd_module")"
containerd_ldflags="-s -w -X $containerd_module/version.Version=$containerd_version"
containerd_ldflags="$containerd_ldflags -X $containerd_module/version.Package=$containerd_module"
# btrfs and devmapper snapshotters need cgo and headers; the node uses overlayfs (or native).
for cmd in containerd containerd-shim-runc-v2 ctr; do
    CGO_ENABLED=0 build containerd "$cmd" "$containerd_module/cmd/$cmd" \
        -tags "urfave_cli_no_docs no_btrfs no_devmapper" -ldflags "$containerd_ldflags"
done

runc_version="$(cd "$modules/runc" && "$go" list -m -f '{{.Version}}' github.com/opencontainers/runc)"
# Without the libpathrs tag runc uses its pure-Go path resolution; seccomp needs cgo.
CGO_ENABLED=1 build runc runc github.com/opencontainers/runc \
    -tags "seccomp urfave_cli_no_docs" -ldflags "-s -w -X main.version=${runc_version#v}"

plugins=github.com/containernetworking/plugins
for plugin in main/bridge ipam/host-local main/loopback; do
    CGO_ENABLED=0 build cni "$(basename "$plugin")" "$plugins/plugins/$plugin" -ldflags "-s -w"
done

"$staging/runc" --version | grep -q '^libseccomp: ' || {
    echo "build-node: runc was built without libseccomp:" >&2
    "$staging/runc" --version >&2
    exit 1
}

rm -rf "$bin"
mv "$staging" "$bin"
echo "build-node: built in $((SECONDS - started)) s into $bin" >&2
echo "$bin"
