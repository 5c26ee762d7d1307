#!/usr/bin/env bash
# The soak of the reliability issue: pod-hardener alone (the release binary, a child process),
# its saturation measured by a 10 s closed loop, then an open loop at half that rate for
# SOAK_SECONDS (default 600) while its VmRSS is read every 10 s (benches/load/, `--soak`).
# Prints the figures and PASS/FAIL for: zero errors, zero timeouts, RSS drift under 2%; exits
# non-zero when any fails. Respects CARGO_TARGET_DIR. Loopback only; figures are printed, not
# asserted. docs/reliability.md ("Soak") defines the drift.
# Usage: [SOAK_SECONDS=600] scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
seconds="${SOAK_SECONDS:-600}"
echo "== soak for ${seconds}s (cargo bench --bench load -- --soak ${seconds})"
cargo bench --locked --bench load -- --soak "$seconds"
