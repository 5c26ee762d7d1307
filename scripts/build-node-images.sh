#!/usr/bin/env bash
# Builds the test images that the end-to-end node tests run, without a registry or a container
# daemon: one layer with Debian's statically linked busybox (busybox-static) and a probe script,
# and one image config per tag, packed with umoci into one OCI archive that the harness imports
# into containerd (`ctr images import --base-name docker.io/pod-hardener-e2e/probe`):
#
#   tag                   USER          VOLUME  the probe writes to         mimics
#   no-user               (none: root)          /tmp                        most public images
#   named-user            nobody                /tmp                        USER by name, in /etc/passwd
#   named-user-no-passwd  app                   /tmp                        USER by name, no entry
#   numeric-user          65532                 /tmp                        distroless-style images
#   volume                65532         /data   /tmp and /data              a VOLUME for state
#   writes-rootfs         65532                 /tmp and /var/cache/app     caches on the root fs
#   pause                 65535                 (none)                      the Pod sandbox
#
# Every probe prints the security lines of /proc/self/status (Uid, Gid, Seccomp, NoNewPrivs,
# CapEff...), whether / and /tmp are writable, then writes to its directories (exit 1 when one
# fails) and prints `probe: done`; it exits 0 there when PROBE_EXIT is set (Jobs), else it stays
# up until SIGTERM (Pods). `pause` is the sandbox image containerd is configured with.
#
# Output: ${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}/node-images/<hash>/probe-oci.tar, <hash>
# covering this script and the busybox-static version; the last line of stdout is that path.
# Fetches busybox-static with `apt-get download` (nothing is installed on the machine) and installs
# umoci from Debian's packages when it lacks it.
# Usage: scripts/build-node-images.sh
set -euo pipefail

script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
epoch=0 # every timestamp in the layer and configs: the archive is reproducible

if ! command -v umoci >/dev/null 2>&1 || ! command -v apt-cache >/dev/null 2>&1; then
    echo "build-node-images: installing umoci" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends umoci >/dev/null
fi
busybox_version="$(apt-cache policy busybox-static | sed -n 's/^ *Candidate: //p')"
if [ -z "$busybox_version" ] || [ "$busybox_version" = "(none)" ]; then
    apt-get update -qq
    busybox_version="$(apt-cache policy busybox-static | sed -n 's/^ *Candidate: //p')"
fi
hash="$({ cat "$script"; echo "$busybox_version"; } | sha256sum | cut -c1-16)"
dest="${POD_HARDENER_CACHE:-$HOME/.cache/pod-hardener}/node-images/$hash"
archive="$dest/probe-oci.tar"
if [ -s "$archive" ]; then
    echo "$archive"
    exit 0
fi
mkdir -p "$dest"
exec 9>"$dest/.lock"
flock 9
if [ -s "$archive" ]; then
    echo "$archive"
    exit 0
fi

work="$(mktemp -d)"
chmod 0755 "$work" # apt-get download runs as _apt
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq "busybox-static=$busybox_version" >/dev/null)
dpkg-deb -x "$work"/busybox-static_*.deb "$work/deb"

rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,etc,tmp,data,var/cache,proc,sys,dev}
install -m 0755 "$work/deb/bin/busybox" "$rootfs/bin/busybox"
for applet in sh cat grep touch mkdir echo sleep id; do
    ln -s busybox "$rootfs/bin/$applet"
done
# `nobody` is listed, `app` (named-user-no-passwd) deliberately is not.
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\nnonroot:x:65532:65532:nonroot:/home/nonroot:/bin/sh\n' \
    >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
cat >"$rootfs/bin/probe" <<'EOF'
#!/bin/sh
# probe [DIR...]: what a hardened container sees from inside; see scripts/build-node-images.sh.
grep -E '^(Uid|Gid|Groups|Seccomp|NoNewPrivs|CapInh|CapPrm|CapEff|CapBnd|CapAmb):' /proc/self/status
if touch /.probe 2>/dev/null; then echo "rootfs: writable"; else echo "rootfs: read-only"; fi
if touch /tmp/.probe 2>/dev/null; then echo "tmp: writable"; else echo "tmp: not writable"; fi
for dir in "$@"; do
    if mkdir -p "$dir" && echo probe >"$dir/probe"; then
        echo "write $dir: ok"
    else
        echo "write $dir: failed"
        exit 1
    fi
done
echo "probe: done"
[ -n "$PROBE_EXIT" ] && exit 0
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
EOF
cat >"$rootfs/bin/pause" <<'EOF'
#!/bin/sh
# The Pod sandbox: holds the namespaces until SIGTERM or SIGINT.
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
EOF
chmod 0755 "$rootfs/bin/probe" "$rootfs/bin/pause"
chmod 1777 "$rootfs/tmp"
chown 65532:65532 "$rootfs/data"
tar --create --file "$work/layer.tar" --directory "$rootfs" --format=ustar --sort=name \
    --mtime="@$epoch" --numeric-owner .

layout="$work/oci"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
umoci init --layout "$layout"
umoci new --image "$layout:base"
umoci raw add-layer --image "$layout:base" --history.created "$created" \
    --history.created_by scripts/build-node-images.sh "$work/layer.tar"
# image TAG USER ENTRYPOINT-ARGS... [-- VOLUME]
image() {
    local tag="$1" user="$2"
    shift 2
    local args=(--no-history --image "$layout:base" --tag "$tag" --created "$created"
        --architecture amd64 --os linux --config.workingdir /
        --config.env PATH=/bin)
    [ -n "$user" ] && args+=(--config.user "$user")
    local volume=""
    local entrypoint=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --volume) volume="$2"; shift 2 ;;
            *) entrypoint+=(--config.entrypoint "$1"); shift ;;
        esac
    done
    [ -n "$volume" ] && args+=(--config.volume "$volume")
    umoci config "${args[@]}" "${entrypoint[@]}"
}
image no-user "" /bin/probe
image named-user nobody /bin/probe
image named-user-no-passwd app /bin/probe
image numeric-user 65532 /bin/probe
image volume 65532 /bin/probe /data --volume /data
image writes-rootfs 65532 /bin/probe /var/cache/app
image pause 65535:65535 /bin/pause
umoci rm --image "$layout:base"
umoci gc --layout "$layout"
chmod -R a+rX "$layout"
tar --create --file "$archive.partial" --directory "$layout" --format=ustar --sort=name \
    --mtime="@$epoch" --owner=0 --group=0 --numeric-owner .
mv "$archive.partial" "$archive"
echo "build-node-images: $(jq -r '[.manifests[].annotations["org.opencontainers.image.ref.name"]] | join(" ")' "$layout/index.json") into $archive" >&2
echo "$archive"
