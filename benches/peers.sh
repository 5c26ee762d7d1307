#!/usr/bin/env bash
# pod-hardener against its peers, reproducible by anyone with Go, Rust and the Go module proxy:
# builds the tests' control plane (scripts/build-control-plane.sh) and the peers
# (scripts/build-peers.sh: Kubernetes' standalone Pod Security Admission webhook and OPA
# Gatekeeper, from their published Go modules at the versions pinned in benches/peers/*/go.mod),
# both cached, then runs the load harness's peers comparison (benches/load/peers.rs): every
# server on CPU 1, their answers checked equal to pod-hardener's before anything is timed.
# Not run in CI: about 10 minutes with warm caches (a cold build adds about 25).
# Usage: benches/peers.sh [load harness options, e.g. --seconds 5 --rounds 1 --payload mutate-3k]
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
POD_HARDENER_CONTROL_PLANE_BIN="$(scripts/build-control-plane.sh | tail -n 1)"
export POD_HARDENER_CONTROL_PLANE_BIN
peers_bin="$(scripts/build-peers.sh | tail -n 1)"
cargo bench --locked --bench load -- --peers "$peers_bin" "$@"
