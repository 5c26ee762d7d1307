# Shared by the scripts that build pinned Go modules into a cache (build-control-plane.sh,
# build-tools.sh). Source it; it defines:
#   find_go NAME            sets $go to the Go toolchain (go on PATH or /usr/local/go/bin/go),
#                           or exits naming the calling script NAME
#   cache_key RECIPE FILE.. prints a 16-hex-digit hash of the build recipe and the files
#                           (go.mod and go.sum of the modules built), the cache directory's name
#   fetch_module_files NAME MODULE VERSION SUBDIR DEST FILE..
#                           copies FILEs of SUBDIR of the published MODULE@VERSION (downloaded
#                           through the module proxy, verified by Go's checksum database) into
#                           DEST, once: a second call finds them (one caller at a time)

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

fetch_module_files() {
    local name="$1" module="$2" version="$3" subdir="$4" dest="$5" f dir missing=0
    shift 5
    for f in "$@"; do [ -f "$dest/$f" ] || missing=1; done
    [ "$missing" -eq 0 ] && return 0
    mkdir -p "$dest"
    exec 9>"$dest/.lock"
    flock 9
    missing=0
    for f in "$@"; do [ -f "$dest/$f" ] || missing=1; done
    if [ "$missing" -eq 1 ]; then
        echo "$name: downloading $module@$version" >&2
        # Outside any module, so no go.mod is needed or touched.
        dir="$(cd / && GOFLAGS=-mod=mod "$go" mod download -json "$module@$version" |
            sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
        if [ -z "$dir" ] || [ ! -d "$dir/$subdir" ]; then
            echo "$name: $module@$version has no $subdir" >&2
            exit 1
        fi
        for f in "$@"; do
            install -m 0644 "$dir/$subdir/$f" "$dest/$f.partial"
            mv "$dest/$f.partial" "$dest/$f"
        done
    fi
    exec 9>&-
}
