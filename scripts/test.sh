#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, conformance, HTTP and CLI tests.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== crates whose types cross API boundaries appear once"
dupes=$(cargo tree -d -e normal --locked 2>/dev/null | grep -E '^(json-patch|jsonptr|k8s-openapi|kube-core|rustls|hyper) ' || true)
if [ -n "$dupes" ]; then echo "duplicate crates: $dupes"; exit 1; fi
echo "== cargo test"
cargo test --locked --all-targets
cargo test --locked --doc
