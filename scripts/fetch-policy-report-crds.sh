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
fetch_module_files fetch-policy-report-crds "$module" "$version" config/crds/policyreport "$dest" "${files[@]}"
echo "$dest"
