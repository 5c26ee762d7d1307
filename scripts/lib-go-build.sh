# Shared by the scripts that build pinned Go modules into a cache (build-control-plane.sh,
# build-tools.sh). Source it; it defines:
#   find_go NAME            sets $go to the Go toolchain (go on PATH or /usr/local/go/bin/go),
#                           or exits naming the calling script NAME
#   cache_key RECIPE FILE.. prints a 16-hex-digit hash of the build recipe and the files
#                           (go.mod and go.sum of the modules built), the cache directory's name

find_go() {
    if command -v go >/dev/null 2>&1; then
        go=go
    elif [ -x /usr/local/go/bin/go ]; then
        go=/usr/local/go/bin/go
    else
        echo "$1: no Go toolchain (go on PATH or /usr/local/go/bin/go)" >&2
        exit 1
    fi
}

cache_key() {
    local recipe="$1"
    shift
    { echo "$recipe"; cat "$@"; } | sha256sum | cut -c1-16
}
