# pod-hardener container image: a statically linked (musl) release binary on an empty base.
#
#   docker build \
#     --build-arg VERSION=0.1.0 \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" \
#     -t registry.example.com/pod-hardener:0.1.0 .
#
# (`buildah bud` / `podman build` take the same arguments.) The build runs the same script as the
# daemonless build, scripts/build-image.sh, so the binary is built with the same flags; see
# docs/packaging.md.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
ARG REVISION=unknown
ARG SOURCE_DATE_EPOCH=0
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools file \
    && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# .git is not in the build context: the commit comes from REVISION (first 12 hex digits, as
# `git rev-parse --short=12` gives it for build.rs).
RUN POD_HARDENER_GIT_COMMIT="$(printf %.12s "$REVISION")" \
    POD_HARDENER_STATIC_TARGET=musl \
    SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" \
    bash -euo pipefail -c '. scripts/lib-release-build.sh && release_build && release_check_static "$RELEASE_BIN" \
        && mkdir -p /rootfs/etc/pod-hardener /rootfs/tmp \
        && install -m 0755 "$RELEASE_BIN" /rootfs/pod-hardener \
        && install -m 0644 packaging/rootfs/etc/passwd packaging/rootfs/etc/group /rootfs/etc/ \
        && install -m 0644 packaging/rootfs/etc/pod-hardener/config.yaml /rootfs/etc/pod-hardener/ \
        && chmod 1777 /rootfs/tmp'

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/pod-hardener/pod-hardener
LABEL org.opencontainers.image.title="pod-hardener" \
      org.opencontainers.image.description="Kubernetes admission webhook that hardens Pods to the Pod Security Standards" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}"
# /pod-hardener, /etc/passwd and /etc/group (nonroot = 65532), /etc/pod-hardener/config.yaml
# (every default) and an empty /tmp (1777). No shell, no libc, nothing else.
COPY --from=build /rootfs/ /
ENV POD_HARDENER_CONFIG=/etc/pod-hardener/config.yaml
USER 65532:65532
WORKDIR /
EXPOSE 8443 9090
# Entrypoint is the binary and the default command `serve`, so `docker run IMAGE` serves, the
# Deployment's `args: ["serve", "--config", ...]` works unchanged, and `docker run IMAGE check -f -`
# runs the other subcommands.
ENTRYPOINT ["/pod-hardener"]
CMD ["serve"]
