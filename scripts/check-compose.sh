#!/usr/bin/env bash
# Static checks of the docker compose demo (no Docker engine needed):
#   compose file syntax, Prometheus config, PromQL of every dashboard query,
#   dashboard JSON, the proxy config (`canary-proxy check`), the Dockerfile's inputs.
# Bounded and idempotent: every step has a timeout; installs only when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
ok()   { printf '  ok    %s\n' "$*"; }
bad()  { printf '  FAIL  %s\n' "$*"; fail=1; }
step() { printf '%s\n' "$*"; }
T="timeout 120"

step "compose file"
compose=()
if $T docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  $T apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $T apt-get install -y -qq docker-compose >/dev/null 2>&1 || true
  command -v docker-compose >/dev/null 2>&1 && compose=(docker-compose)
fi
if [ ${#compose[@]} -eq 0 ]; then
  bad "no docker compose client available to validate docker-compose.yml"
else
  # `config` parses, interpolates and validates against the compose schema; no engine needed.
  if out=$($T "${compose[@]}" -f docker-compose.yml config 2>&1); then
    services=$(printf '%s\n' "$out" | $T "${compose[@]}" -f docker-compose.yml config --services 2>/dev/null | sort | tr '\n' ' ')
    ok "${compose[*]} config: services: $services"
    for s in proxy stable canary load prometheus grafana; do
      printf '%s\n' "$services" | grep -qw "$s" || bad "service $s missing"
    done
  else
    bad "${compose[*]} config:"; printf '%s\n' "$out" | sed 's/^/        /'
  fi
fi

step "prometheus"
if command -v promtool >/dev/null 2>&1; then
  if $T promtool check config config/prometheus.yml >/tmp/check-compose-prom.txt 2>&1; then
    ok "promtool check config config/prometheus.yml"
  else
    bad "promtool check config:"; sed 's/^/        /' /tmp/check-compose-prom.txt
  fi
else
  bad "promtool not installed (apt-get install prometheus)"
fi

step "grafana"
dash=config/grafana/dashboards/canary-proxy.json
if $T python3 -m json.tool "$dash" >/dev/null; then
  ok "$dash is valid JSON"
else
  bad "$dash is not valid JSON"
fi
for f in config/grafana/provisioning/datasources/prometheus.yml config/grafana/provisioning/dashboards/canary-proxy.yml; do
  if $T python3 -c 'import sys,yaml; yaml.safe_load(open(sys.argv[1]))' "$f" 2>/dev/null; then ok "$f is valid YAML"
  elif $T python3 -c 'import yaml' 2>/dev/null; then bad "$f is not valid YAML"
  else ok "$f (YAML not checked: no python3-yaml)"; fi
done
# Every panel query must parse as PromQL: check them as recording rules.
rules=$(mktemp); trap 'rm -f "$rules"' EXIT
python3 - "$dash" >"$rules" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("groups:\n- name: dashboard\n  rules:")
for p in d["panels"]:
    for t in p.get("targets", []):
        print(f"  - record: dashboard:panel{p['id']}:{t['refId']}\n    expr: {json.dumps(t['expr'])}")
PY
if $T promtool check rules "$rules" >/tmp/check-compose-rules.txt 2>&1; then
  ok "promtool: every dashboard query parses ($(grep -c 'record:' "$rules") queries)"
else
  bad "dashboard PromQL:"; sed 's/^/        /' /tmp/check-compose-rules.txt
fi
# The dashboard uses the contract's metric names (SPEC §5).
for m in http_requests_total http_request_duration_seconds_bucket canary_weight canary_phase canary_aborts_total upstream_endpoint_healthy; do
  grep -q "$m" "$dash" && ok "dashboard queries $m" || bad "dashboard does not query $m"
done
grep -q '"uid": "prometheus"' config/grafana/provisioning/datasources/prometheus.yml 2>/dev/null \
  || grep -q 'uid: prometheus' config/grafana/provisioning/datasources/prometheus.yml \
  && ok "datasource uid matches the dashboard's" || bad "datasource uid differs from the dashboard's"

step "proxy config"
$T cargo build --quiet --bin canary-proxy
for f in config/compose/*.yaml; do
  if out=$(env -u CANARY_ADMIN_TOKEN $T target/debug/canary-proxy check --config "$f" 2>&1); then
    ok "canary-proxy check $f: $out"
  else
    bad "canary-proxy check $f:"; printf '%s\n' "$out" | sed 's/^/        /'
  fi
done
sh -n config/compose/load.sh && ok "config/compose/load.sh parses (sh -n)" || bad "config/compose/load.sh syntax"

step "Dockerfile"
grep -q '^FROM rust:.* AS build' Dockerfile && grep -q '^FROM debian:.*-slim' Dockerfile \
  && ok "multi-stage: rust builder -> debian-slim runtime" || bad "Dockerfile is not rust -> debian-slim multi-stage"
grep -q 'COPY --from=build /src/target/release/canary-proxy' Dockerfile && ok "runtime copies the release binary" || bad "binary copy missing"
[ -d config/compose ] && ok "COPY config/compose/ exists" || bad "config/compose missing"

if [ "$fail" = 0 ]; then echo "check-compose: all checks passed"; else echo "check-compose: FAILED"; fi
exit "$fail"
