# Sourced (not run) by scripts/build-image.sh, scripts/reproducible-build.sh and the Dockerfile:
# one definition of the reproducible, statically linked release build of pod-hardener.
#
#   . scripts/lib-release-build.sh
#   release_build            # builds into $CARGO_TARGET_DIR (default target/), sets RELEASE_BIN
#
# Inputs (all optional):
#   POD_HARDENER_STATIC_TARGET  musl (default: x86_64-unknown-linux-musl if rustup and musl-gcc
#                               can provide it) | gnu (glibc with crt-static)
#   POD_HARDENER_GIT_COMMIT     embedded by build.rs (default: `git rev-parse --short=12 HEAD`)
#   SOURCE_DATE_EPOCH           default: the commit time of HEAD (`git log -1 --format=%ct`)
# Outputs: RELEASE_TARGET (the target triple), RELEASE_BIN (path of the binary).
#
# Reproducibility: no timestamps are embedded (build.rs embeds only the commit), the checkout's
# sources are compiled by relative path and the cargo-home path is remapped to a fixed string,
# the lockfile is enforced, and the profile has codegen-units = 1, so two builds of one commit with one toolchain give the same bytes
# (scripts/reproducible-build.sh checks it).

# shellcheck shell=bash

RELEASE_MUSL_TRIPLE=x86_64-unknown-linux-musl
RELEASE_GNU_TRIPLE=x86_64-unknown-linux-gnu

release_log() { echo "[release-build] $*" >&2; }

# Picks the target: musl when its standard library is installed or rustup can add it and
# musl-gcc (Debian's musl-tools, needed by ring's C code) exists; otherwise glibc + crt-static.
release_pick_target() {
    if [ -n "${RELEASE_TARGET:-}" ]; then
        return 0
    fi
    case "${POD_HARDENER_STATIC_TARGET:-}" in
        gnu) RELEASE_TARGET=$RELEASE_GNU_TRIPLE; return 0 ;;
        musl) RELEASE_TARGET=$RELEASE_MUSL_TRIPLE; return 0 ;;
        "") ;;
        *) release_log "POD_HARDENER_STATIC_TARGET must be musl or gnu"; return 1 ;;
    esac
    local sysroot
    sysroot="$(rustc --print sysroot)"
    if ! command -v musl-gcc >/dev/null 2>&1; then
        release_log "musl-gcc not found (apt-get install musl-tools): falling back to glibc crt-static"
        RELEASE_TARGET=$RELEASE_GNU_TRIPLE
    elif [ -d "$sysroot/lib/rustlib/$RELEASE_MUSL_TRIPLE/lib" ]; then
        RELEASE_TARGET=$RELEASE_MUSL_TRIPLE
    elif command -v rustup >/dev/null 2>&1 && timeout 300 rustup target add "$RELEASE_MUSL_TRIPLE" >&2; then
        RELEASE_TARGET=$RELEASE_MUSL_TRIPLE
    else
        release_log "rustup could not add $RELEASE_MUSL_TRIPLE: falling back to glibc crt-static"
        RELEASE_TARGET=$RELEASE_GNU_TRIPLE
    fi
}

# The reproducible static release build. Run from the repository root.
release_build() {
    local root cargo_home flags
    root="$(pwd -P)"
    cargo_home="$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd -P)"
    release_pick_target || return 1

    if [ -z "${POD_HARDENER_GIT_COMMIT:-}" ]; then
        POD_HARDENER_GIT_COMMIT="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
    fi
    if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
        SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || echo 0)"
    fi
    export POD_HARDENER_GIT_COMMIT SOURCE_DATE_EPOCH

    # Only $CARGO_HOME needs remapping: cargo hands rustc the checkout's own sources by relative
    # paths (src/...), so no path of the checkout is in the stripped binary (checked: no
    # /build/pod-hardener after remapping it there). Leaving the checkout out of RUSTFLAGS keeps
    # them the same for every clone, so CI's clean clones reuse the cached dependency builds.
    flags="--remap-path-prefix=$cargo_home=/cargo"
    if [ "$RELEASE_TARGET" = "$RELEASE_MUSL_TRIPLE" ]; then
        export CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}"
    else
        flags="$flags -C target-feature=+crt-static"
    fi
    release_log "target $RELEASE_TARGET, commit $POD_HARDENER_GIT_COMMIT, SOURCE_DATE_EPOCH $SOURCE_DATE_EPOCH"
    # RUSTFLAGS with an explicit --target applies to the target only, not to build scripts.
    RUSTFLAGS="$flags" CARGO_TERM_COLOR=never \
        cargo build --release --locked --target "$RELEASE_TARGET" --bin pod-hardener || return 1
    RELEASE_BIN="${CARGO_TARGET_DIR:-$root/target}/$RELEASE_TARGET/release/pod-hardener"
    export RELEASE_TARGET RELEASE_BIN
}

# Fails unless the binary is statically linked (no program interpreter, no shared libraries).
release_check_static() {
    local bin="$1" desc
    desc="$(file -L "$bin")"
    release_log "$desc"
    case "$desc" in
        *"statically linked"* | *"static-pie linked"*) ;;
        *) release_log "not statically linked: $bin"; return 1 ;;
    esac
    if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
        release_log "has a program interpreter: $bin"
        return 1
    fi
    if readelf -d "$bin" | grep -q '(NEEDED)'; then
        release_log "needs shared libraries: $bin"
        return 1
    fi
}
