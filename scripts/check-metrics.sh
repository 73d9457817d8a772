#!/usr/bin/env bash
# Checks that /metrics output passes `promtool check metrics` (format + lint).
# Installs promtool (Debian package `prometheus`) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
    echo "check-metrics: installing promtool (apt package prometheus)" >&2
    as_root=""
    [ "$(id -u)" -eq 0 ] || as_root="sudo"
    timeout 300 $as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 600 $as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
timeout 900 cargo run --quiet --example dump_metrics >"$out"

for name in http_requests_total http_request_duration_seconds_bucket canary_weight \
    canary_phase canary_aborts_total upstream_endpoint_healthy; do
    grep -q "^$name" "$out" || { echo "check-metrics: $name missing" >&2; exit 1; }
done

# promtool prints lint problems and exits non-zero on any of them
if ! timeout 60 promtool check metrics <"$out"; then
    echo "check-metrics: promtool check metrics failed" >&2
    exit 1
fi
echo "check-metrics: OK ($(grep -vc '^#' "$out") samples)"
