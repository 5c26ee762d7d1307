#!/usr/bin/env bash
# Fetches cert-manager's CustomResourceDefinitions (cert-manager.io: Issuer, ClusterIssuer,
# Certificate, CertificateRequest) from its published Go module at the pinned version, for the
# test that applies the cert-manager overlay and chart values to a real API server against them
# (tests/cert_manager.rs). Only the CRDs: cert-manager's controller and cainjector are nested
# modules (controller-binary, cainjector-binary) that the module proxy here does not serve.
#
# The files go to ${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}/cert-manager-crds/<version>/;
# the last line of stdout is that directory. Needs Go (module download only, no build).
# Usage: scripts/fetch-cert-manager-crds.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
module=github.com/cert-manager/cert-manager
version=v1.21.2
files=(cert-manager.io_issuers.yaml cert-manager.io_clusterissuers.yaml
    cert-manager.io_certificates.yaml cert-manager.io_certificaterequests.yaml)

# shellcheck source=scripts/lib-go-build.sh
. "$root/scripts/lib-go-build.sh"
find_go fetch-cert-manager-crds
cache_root="${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}"
dest="$cache_root/cert-manager-crds/$version"
fetch_module_files fetch-cert-manager-crds "$module" "$version" deploy/crds "$dest" "${files[@]}"
echo "$dest"
