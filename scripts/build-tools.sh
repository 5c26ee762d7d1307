#!/usr/bin/env bash
# Builds the real tools the chart corpus test (tests/charts.rs) runs pod-hardener with:
# helm v3 (e2e/tools/helm3), helm v4 (e2e/tools/helm4), kustomize v5 (e2e/tools/kustomize) and
# kubectl at the control plane's version (e2e/tools/kubectl), each from its published Go module
# at the version pinned there.
#
# The binaries go to
#   ${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}/tools/<hash>/bin/{helm3,helm4,kustomize,kubectl}
# where <hash> covers every module's go.mod and go.sum and the build recipe below, so a change of
# pinned versions builds afresh and anything else reuses the first build. When the binaries are
# already there nothing is built. The last line of stdout is the bin directory; progress goes to
# stderr. Go builds on this machine take turns through one lock file, shared with the other build
# scripts, because two cold builds at once exhaust 2 cores and memory.
#
# A cold build takes a few minutes per tool on 2 cores (see README).
# Usage: scripts/build-tools.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
modules="$root/e2e/tools"
tools=(helm3 helm4 kustomize kubectl)

# Change this when the flags below change, so that cached binaries are rebuilt.
recipe="cgo0 trimpath ldflags-s-w version-x p2 v1"

# shellcheck source=scripts/lib-go-build.sh
. "$root/scripts/lib-go-build.sh"
find_go build-tools
module_files=()
for t in "${tools[@]}"; do
    module_files+=("$modules/$t/go.mod" "$modules/$t/go.sum")
done
hash="$(cache_key "$recipe" "${module_files[@]}")"
cache_root="${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}"
dest="$cache_root/tools/$hash"
bin="$dest/bin"

complete() {
    local t
    for t in "${tools[@]}"; do
        [ -x "$bin/$t" ] || return 1
    done
}

if complete; then
    echo "$bin"
    exit 0
fi

mkdir -p "$dest" "$bin"
# One build at a time per hash: a second caller waits, then finds the binaries.
exec 9>"$dest/.lock"
flock 9

export CGO_ENABLED=0
started=$SECONDS

# The main package of each module's single `tool` line, its module and its version.
main_package() { sed -n 's/^tool \(.*\)$/\1/p' "$modules/$1/go.mod"; }

for t in "${tools[@]}"; do
    [ -x "$bin/$t" ] && continue
    pkg="$(main_package "$t")"
    case "$t" in
    helm3) module=helm.sh/helm/v3 ;;
    helm4) module=helm.sh/helm/v4 ;;
    kustomize) module=sigs.k8s.io/kustomize/kustomize/v5 ;;
    kubectl) module=k8s.io/kubernetes ;;
    esac
    version="$(cd "$modules/$t" && "$go" list -m -f '{{.Version}}' "$module")"
    case "$t" in
    helm*)
        ldflags="-s -w -X $module/internal/version.version=$version" ;;
    kubectl)
        minor="$(echo "$version" | cut -d. -f2)"
        vpkg=k8s.io/component-base/version
        ldflags="-s -w -X $vpkg.gitVersion=$version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean" ;;
    *)
        ldflags="-s -w" ;;
    esac
    echo "build-tools: building $t ($pkg $version)" >&2
    # The machine-wide Go build lock (scripts/build-control-plane.sh and the node build take it
    # too): one cold Go build at a time.
    (cd "$modules/$t" && flock "$cache_root/go-build.lock" \
        "$go" build -p 2 -trimpath -ldflags "$ldflags" -o "$bin/$t.partial" "$pkg")
    mv "$bin/$t.partial" "$bin/$t"
done

echo "build-tools: built in $((SECONDS - started)) s into $bin" >&2
echo "$bin"
