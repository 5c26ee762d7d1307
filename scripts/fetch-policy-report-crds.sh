#!/usr/bin/env bash
# Fetches the wgpolicyk8s.io PolicyReport and ClusterPolicyReport CRDs (v1alpha2) that the audit
# tests (tests/audit.rs) install in the real control plane. The policy working group's own
# repository (sigs.k8s.io/wg-policy-prototypes) is not on the Go module proxy; Kyverno's module
# ships the same CRDs, generated from that API (config/crds/policyreport/), so they come from
# Kyverno's published module at the pinned version, verified by Go's checksum database.
#
# The two files go to ${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}/policy-report-crds/<version>/;
# the last line of stdout is that directory. Needs Go (module download only, no build).
# Usage: scripts/fetch-policy-report-crds.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
module=github.com/kyverno/kyverno
version=v1.19.1
files=(wgpolicyk8s.io_policyreports.yaml wgpolicyk8s.io_clusterpolicyreports.yaml)

# shellcheck source=scripts/lib-go-build.sh
. "$root/scripts/lib-go-build.sh"
find_go fetch-policy-report-crds
cache_root="${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}"
dest="$cache_root/policy-report-crds/kyverno-$version"
if [ -f "$dest/${files[0]}" ] && [ -f "$dest/${files[1]}" ]; then
    echo "$dest"
    exit 0
fi
mkdir -p "$dest"
exec 9>"$dest/.lock"
flock 9
if [ ! -f "$dest/${files[0]}" ] || [ ! -f "$dest/${files[1]}" ]; then
    echo "fetch-policy-report-crds: downloading $module@$version" >&2
    # Outside any module, so no go.mod is needed or touched.
    dir="$(cd / && GOFLAGS=-mod=mod "$go" mod download -json "$module@$version" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    if [ -z "$dir" ] || [ ! -d "$dir/config/crds/policyreport" ]; then
        echo "fetch-policy-report-crds: $module@$version has no config/crds/policyreport" >&2
        exit 1
    fi
    for f in "${files[@]}"; do
        install -m 0644 "$dir/config/crds/policyreport/$f" "$dest/$f.partial"
        mv "$dest/$f.partial" "$dest/$f"
    done
fi
echo "$dest"
