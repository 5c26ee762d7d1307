#!/usr/bin/env bash
# Runs every fuzz target (cargo fuzz, libFuzzer, nightly toolchain) for FUZZ_SECONDS each
# (default 30; FUZZ_SANITIZER=address for an ASan build), starting from the seed corpora in
# fuzz/corpus/<target>/. New inputs go to a scratch directory, so the committed corpora only change by hand. Any crash fails the script;
# the crashing input is in fuzz/artifacts/<target>/.
# Usage: scripts/fuzz.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-30}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(admission_review planner evaluator manifests registry)
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: the nightly toolchain is required (rustup toolchain install nightly)" >&2
    exit 1
fi
# No AddressSanitizer: the crate and its fuzz targets forbid unsafe code, so what these targets
# find is panics, timeouts and memory blow-ups, which libFuzzer catches without it. Without the
# sanitizer the cold build is far shorter (it dominated a cold CI run) and each run executes more.
sanitizer="${FUZZ_SANITIZER:-none}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    echo "== fuzz $target for ${seconds}s"
    status=0
    cargo +nightly fuzz run --sanitizer "$sanitizer" "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 -print_final_stats=1 \
        >"$scratch/$target.log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|INFO: seed corpus)' "$scratch/$target.log" || true
    # libFuzzer's last status line: executions, coverage (cov: edges, ft: features), corpus size.
    grep -E '^#[0-9]+' "$scratch/$target.log" | tail -n 1 || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$scratch/$target.log" >&2
        echo "fuzz: $target failed (exit $status); crashing inputs are in fuzz/artifacts/$target" >&2
        exit 1
    fi
done
