#!/bin/sh
# What the Helm 4 plugin runs (plugin.yaml): rendered manifests on stdin, hardened ones on stdout,
# any --post-renderer-args passed on to `harden`.
set -eu
exec "${POD_HARDENER_BIN:-pod-hardener}" harden "$@"
