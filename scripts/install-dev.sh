#!/usr/bin/env bash
# Installs pod-hardener into the cluster of the current kubectl context with a certificate from
# `pod-hardener certs` (no cert-manager): generates the certificate, creates the TLS Secret,
# applies manifests/, and fills the caBundle of both webhook configurations.
# Usage: scripts/install-dev.sh [path/to/pod-hardener]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-}"
if [ -z "$bin" ]; then
    cargo build --release --locked
    bin=target/release/pod-hardener
fi
ca_bundle="$("$bin" certs --service pod-hardener --namespace pod-hardener --out-dir certs/out)"
kubectl apply -k manifests
kubectl -n pod-hardener create secret tls pod-hardener-tls \
    --cert=certs/out/tls.crt --key=certs/out/tls.key --dry-run=client -o yaml | kubectl apply -f -
for kind in mutatingwebhookconfiguration validatingwebhookconfiguration; do
    kubectl patch "$kind" pod-hardener --type=json \
        -p "[{\"op\":\"add\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$ca_bundle\"}]"
done
kubectl -n pod-hardener rollout status deploy/pod-hardener --timeout=120s
