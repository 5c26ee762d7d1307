#!/usr/bin/env bash
# Builds the pod-hardener container image without a container daemon, then checks it:
#   1. the reproducible, statically linked release binary (scripts/lib-release-build.sh);
#   2. an OCI image layout with umoci: one layer holding /pod-hardener, /etc/passwd and /etc/group
#      (user nonroot 65532), /etc/pod-hardener/config.yaml (every default), the CA roots
#      (/etc/ssl/certs/ca-certificates.crt, for image lookups) and an empty /tmp
#      (1777); user 65532:65532, entrypoint /pod-hardener, cmd serve, OCI labels;
#      output target/image/oci/ (reference pod-hardener:VERSION, VERSION from Cargo.toml) and
#      target/image/pod-hardener-oci.tar;
#   3. unpacks the image and, chrooted into its root filesystem as 65532:65532 (needs root),
#      runs `pod-hardener version`, `check` of a compliant and a violating Pod, and `serve` with
#      a certificate from `pod-hardener certs` until /healthz answers: proof that the binary is
#      self-contained and runs as the image's user;
#   4. prints the compressed image size and fails above 15 MB (15,000,000 bytes).
# Installs what it lacks from Debian's packages (umoci, musl-tools) when run as root.
# Usage: scripts/build-image.sh        (env: CARGO_TARGET_DIR, POD_HARDENER_STATIC_TARGET=musl|gnu,
#                                        IMAGE_SIZE_LIMIT bytes)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd -P)"
start=$(date +%s)

# --- tools --------------------------------------------------------------------------------
need_pkgs=()
command -v umoci >/dev/null 2>&1 || need_pkgs+=(umoci)
command -v musl-gcc >/dev/null 2>&1 || need_pkgs+=(musl-tools)
command -v file >/dev/null 2>&1 || need_pkgs+=(file)
command -v readelf >/dev/null 2>&1 || need_pkgs+=(binutils)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v jq >/dev/null 2>&1 || need_pkgs+=(jq)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "== installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
if [ "$(id -u)" != 0 ]; then
    echo "scripts/build-image.sh needs root (chroot into the unpacked image)" >&2
    exit 1
fi

# --- 1. the binary ------------------------------------------------------------------------
echo "== static release binary"
# shellcheck source=scripts/lib-release-build.sh
. scripts/lib-release-build.sh
release_build
release_check_static "$RELEASE_BIN"
bin_sha=$(sha256sum "$RELEASE_BIN" | cut -d' ' -f1)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
ref="pod-hardener:$version"   # org.opencontainers.image.ref.name: podman load names it localhost/$ref
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
source_url="${POD_HARDENER_SOURCE_URL:-https://github.com/pod-hardener/pod-hardener}"
created="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
echo "binary $RELEASE_BIN ($RELEASE_TARGET) sha256 $bin_sha"

# --- 2. the OCI layout ----------------------------------------------------------------------
echo "== OCI image layout"
out="$root/target/image"
rootfs="$out/rootfs"
layout="$out/oci"
rm -rf "$rootfs" "$layout" "$out/bundle" "$out/layer.tar" "$out/pod-hardener-oci.tar"
mkdir -p "$rootfs/etc/pod-hardener" "$rootfs/tmp"
install -m 0755 "$RELEASE_BIN" "$rootfs/pod-hardener"
install -m 0644 packaging/rootfs/etc/passwd packaging/rootfs/etc/group "$rootfs/etc/"
install -m 0644 packaging/rootfs/etc/pod-hardener/config.yaml "$rootfs/etc/pod-hardener/"
# The CA roots image lookups verify public registries with (rustls-native-certs reads this file):
# Debian's ca-certificates bundle, installed here when the machine lacks it.
ca_bundle=/etc/ssl/certs/ca-certificates.crt
if [ ! -s "$ca_bundle" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null
fi
install -D -m 0644 "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
chmod 0755 "$rootfs/etc" "$rootfs/etc/pod-hardener" "$rootfs/etc/ssl" "$rootfs/etc/ssl/certs"
chmod 1777 "$rootfs/tmp"
# A byte-for-byte reproducible layer: sorted entries, fixed mtime, owner root, no pax times.
tar --create --file "$out/layer.tar" --directory "$rootfs" --format=ustar --sort=name \
    --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    pod-hardener etc tmp

umoci init --layout "$layout"
umoci new --image "$layout:$ref"
umoci raw add-layer --image "$layout:$ref" \
    --history.created "$created" --history.created_by "scripts/build-image.sh" \
    --history.comment "pod-hardener $version" "$out/layer.tar"
umoci config --no-history --image "$layout:$ref" \
    --created "$created" --author "pod-hardener" \
    --architecture amd64 --os linux \
    --config.user 65532:65532 \
    --config.workingdir / \
    --config.entrypoint /pod-hardener \
    --config.cmd serve \
    --config.env POD_HARDENER_CONFIG=/etc/pod-hardener/config.yaml \
    --config.exposedports 8443/tcp --config.exposedports 9090/tcp \
    --config.label "org.opencontainers.image.title=pod-hardener" \
    --config.label "org.opencontainers.image.description=Kubernetes admission webhook that hardens Pods to the Pod Security Standards" \
    --config.label "org.opencontainers.image.licenses=Apache-2.0" \
    --config.label "org.opencontainers.image.version=$version" \
    --config.label "org.opencontainers.image.source=$source_url" \
    --config.label "org.opencontainers.image.revision=$revision" \
    --config.label "org.opencontainers.image.created=$created"
umoci gc --layout "$layout"
rm -rf "$out/layer.tar" "$rootfs"
chmod -R a+rX "$layout"   # umoci writes blobs 0600
# The layout as one tarball (an "oci-archive": `podman load -i`, `docker load -i` on Docker 25+,
# `skopeo copy oci-archive:...`).
tar --create --file "$out/pod-hardener-oci.tar" --directory "$layout" --format=ustar --sort=name \
    --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner .

# What the image says about itself.
manifest_digest=$(jq -r '.manifests[0].digest' "$layout/index.json")
manifest="$layout/blobs/${manifest_digest/://}"
config="$layout/blobs/$(jq -r '.config.digest' "$manifest" | tr ':' '/')"
jq -e '.config.User == "65532:65532"
       and .config.Entrypoint == ["/pod-hardener"]
       and .config.Cmd == ["serve"]
       and .config.Labels["org.opencontainers.image.version"] != null
       and .config.Labels["org.opencontainers.image.revision"] != null' "$config" >/dev/null \
    || { echo "image config is not as expected:" >&2; jq . "$config" >&2; exit 1; }

# --- 3. run it from the unpacked image ------------------------------------------------------
echo "== unpack and run inside the image's root filesystem (chroot, user 65532:65532)"
umoci unpack --image "$layout:$ref" "$out/bundle"
ufs="$out/bundle/rootfs"
for f in bin/sh usr/bin/env bin/busybox lib lib64 usr/lib; do
    if [ -e "$ufs/$f" ]; then echo "unexpected /$f in the image" >&2; exit 1; fi
done
[ "$(stat -c %a "$ufs/tmp")" = 1777 ] || { echo "/tmp is not 1777" >&2; exit 1; }
install -m 0644 packaging/samples/compliant-pod.yaml "$ufs/sample.yaml"
install -m 0644 packaging/samples/noncompliant-pod.yaml "$ufs/sample-denied.yaml"
chroot_bin="$(command -v chroot)"
in_image() { env -i PATH=/ HOME=/tmp "$chroot_bin" --userspec=65532:65532 "$ufs" "$@"; }

line=$(in_image /pod-hardener version)
echo "$line"
case "$line" in
    "pod-hardener $version (commit $POD_HARDENER_GIT_COMMIT)") ;;
    *) echo "unexpected version line (want commit $POD_HARDENER_GIT_COMMIT)" >&2; exit 1 ;;
esac
in_image /pod-hardener check -f /sample.yaml
set +e
in_image /pod-hardener check -f /sample-denied.yaml >/dev/null
rc=$?
set -e
[ "$rc" = 1 ] || { echo "check of a violating Pod exited $rc, want 1" >&2; exit 1; }
echo "violating Pod: exit 1 as expected"

# serve: the image's config (POD_HARDENER_CONFIG) with a certificate written into /tmp by the
# image's own `certs`, on free loopback ports, until /healthz answers on the metrics port.
in_image /pod-hardener certs --out-dir /tmp/certs >/dev/null
read -r https_port metrics_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
env -i PATH=/ HOME=/tmp POD_HARDENER_CONFIG=/etc/pod-hardener/config.yaml \
    "$chroot_bin" --userspec=65532:65532 "$ufs" /pod-hardener serve \
    --listen "127.0.0.1:$https_port" --metrics-listen "127.0.0.1:$metrics_port" \
    --tls-cert /tmp/certs/tls.crt --tls-key /tmp/certs/tls.key >"$out/serve.log" 2>&1 &
serve_pid=$!
healthy=""
for _ in $(seq 1 100); do
    if curl -fsS --max-time 1 "http://127.0.0.1:$metrics_port/healthz" >/dev/null 2>&1; then
        healthy=yes
        break
    fi
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.1
done
kill -TERM "$serve_pid" 2>/dev/null || true
wait "$serve_pid" 2>/dev/null || true
if [ -z "$healthy" ]; then
    echo "serve inside the image never answered /healthz:" >&2
    cat "$out/serve.log" >&2
    exit 1
fi
echo "serve inside the image answered /healthz and stopped on SIGTERM"
rm -rf "$out/bundle"

# --- 4. size --------------------------------------------------------------------------------
limit="${IMAGE_SIZE_LIMIT:-15000000}"
size=$(jq '[.layers[].size] | add' "$manifest")
echo "== image $ref"
echo "layout        $layout ($layout:$ref)"
echo "archive       $out/pod-hardener-oci.tar"
echo "manifest      $manifest_digest"
echo "binary        sha256:$bin_sha ($RELEASE_TARGET, $(stat -c %s "$RELEASE_BIN") bytes)"
echo "compressed    $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1e6 }') MB), limit $limit"
echo "took          $(( $(date +%s) - start )) s"
if [ "$size" -gt "$limit" ]; then
    echo "the image is over the size limit" >&2
    exit 1
fi
