#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, the duplicate-crate check, then every
# test (unit, PSA conformance, planner, CLI, HTTP, TLS, end-to-end against a real control
# plane, and on a real node: both are built once per machine and cached). The node tests
# (tests/e2e_node.rs) need root and pod-hardener's image (scripts/build-image.sh, which .ci/run
# runs first; the tests build it when it is missing).
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== the test data of other projects (../shared, or the POD_HARDENER_* variables)"
psa_fixtures="${POD_HARDENER_PSA_FIXTURES:-../shared/psa-fixtures}"
if [ ! -f "$psa_fixtures/restricted/v1.37/pass/base.yaml" ]; then
    echo "PSA fixtures not found at $psa_fixtures: set POD_HARDENER_PSA_FIXTURES to a copy of test/testdata/" >&2
    echo "of github.com/kubernetes/pod-security-admission at commit 8f84a87c7f617f64a4ddc1aea24aeeb7a2e07cb8" >&2
    exit 1
fi

echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "== cargo doc (every public item documented, no broken links)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet

echo "== crates whose types cross API boundaries appear once"
dupes=$(cargo tree -d -e normal --locked 2>/dev/null | grep -E '^(json-patch|jsonptr|k8s-openapi|kube-core|rustls|hyper) ' || true)
if [ -n "$dupes" ]; then
    echo "duplicate crates: $dupes"
    exit 1
fi

echo "== cargo deny (licenses, bans, sources; offline)"
if ! command -v cargo-deny >/dev/null 2>&1; then
    cargo install --locked cargo-deny
fi
# cargo metadata (which cargo deny runs) resolves every target's crates (windows-sys, ...),
# which no build on this platform downloads: fetch them first, or a fresh cargo home fails here.
cargo fetch --locked
cargo deny --offline check bans licenses sources

echo "== control plane for the end-to-end tests (cached after the first build)"
POD_HARDENER_CONTROL_PLANE_BIN="$(scripts/build-control-plane.sh | tail -n 1)"
export POD_HARDENER_CONTROL_PLANE_BIN

echo "== helm 3, helm 4, kustomize and kubectl for the chart corpus test (cached after the first build)"
POD_HARDENER_TOOLS_BIN="$(scripts/build-tools.sh | tail -n 1)"
export POD_HARDENER_TOOLS_BIN

echo "== the CNCF distribution registry for the image lookup tests (cached after the first build)"
POD_HARDENER_REGISTRY_BIN="$(scripts/build-registry.sh | tail -n 1)"
export POD_HARDENER_REGISTRY_BIN

echo "== the wgpolicyk8s.io PolicyReport CRDs for the audit tests (cached after the first download)"
POD_HARDENER_POLICY_REPORT_CRDS="$(scripts/fetch-policy-report-crds.sh | tail -n 1)"
export POD_HARDENER_POLICY_REPORT_CRDS

echo "== cert-manager's CRDs for the cert-manager install test (cached after the first download)"
POD_HARDENER_CERT_MANAGER_CRDS="$(scripts/fetch-cert-manager-crds.sh | tail -n 1)"
export POD_HARDENER_CERT_MANAGER_CRDS

echo "== node for the end-to-end node tests: kubelet, containerd, runc, CNI, test images (cached)"
POD_HARDENER_NODE_BIN="$(scripts/build-node.sh | tail -n 1)"
POD_HARDENER_NODE_IMAGES="$(scripts/build-node-images.sh | tail -n 1)"
export POD_HARDENER_NODE_BIN POD_HARDENER_NODE_IMAGES

echo "== cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --locked --all-targets 2>&1 | tee "$log"
cargo test --locked --doc 2>&1 | tee -a "$log"
# One closing line for the whole suite.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
