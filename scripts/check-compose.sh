#!/usr/bin/env bash
# Static checks of the docker compose demo (no Docker engine needed):
#   compose file syntax, Prometheus config, PromQL of every dashboard query,
#   dashboard JSON, Grafana's anonymous role, the proxy config (`canary-proxy check`),
#   the Dockerfile's inputs and its dependency-caching layer (scripts/check-dockerfile.sh).
# Bounded and idempotent: every step has a timeout; installs only when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
ok()   { printf '  ok    %s\n' "$*"; }
bad()  { printf '  FAIL  %s\n' "$*"; fail=1; }
step() { printf '%s\n' "$*"; }
T="timeout 120"
# The compose file and config carry no default admin token: checks get a random one.
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

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
  if out=$(CANARY_ADMIN_TOKEN=$token $T "${compose[@]}" -f docker-compose.yml config 2>&1); then
    services=$(printf '%s\n' "$out" | CANARY_ADMIN_TOKEN=$token $T "${compose[@]}" -f docker-compose.yml config --services 2>/dev/null | sort | tr '\n' ' ')
    ok "${compose[*]} config: services: $services"
    for s in proxy stable canary load prometheus grafana; do
      printf '%s\n' "$services" | grep -qw "$s" || bad "service $s missing"
    done
  else
    bad "${compose[*]} config:"; printf '%s\n' "$out" | sed 's/^/        /'
  fi
  # No default token: without CANARY_ADMIN_TOKEN (and no .env) compose refuses.
  noenv=$(mktemp)
  if out=$(env -u CANARY_ADMIN_TOKEN $T "${compose[@]}" --env-file "$noenv" -f docker-compose.yml config 2>&1); then
    bad "docker-compose.yml accepts an unset CANARY_ADMIN_TOKEN"
  elif printf '%s' "$out" | grep -q 'set CANARY_ADMIN_TOKEN'; then
    ok "docker-compose.yml refuses an unset CANARY_ADMIN_TOKEN"
  else
    bad "docker-compose.yml without CANARY_ADMIN_TOKEN failed otherwise:"; printf '%s\n' "$out" | sed 's/^/        /'
  fi
  rm -f "$noenv"
fi

step "prometheus"
if command -v promtool >/dev/null 2>&1; then
  if $T promtool check config config/prometheus/prometheus.yml >/tmp/check-compose-prom.txt 2>&1; then
    ok "promtool check config config/prometheus/prometheus.yml"
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
# The dashboard queries the metric families the proxy exports on /metrics.
for m in http_requests_total http_request_duration_seconds_bucket canary_weight canary_phase canary_aborts_total upstream_endpoint_healthy; do
  grep -q "$m" "$dash" && ok "dashboard queries $m" || bad "dashboard does not query $m"
done
grep -q '"uid": "prometheus"' config/grafana/provisioning/datasources/prometheus.yml 2>/dev/null \
  || grep -q 'uid: prometheus' config/grafana/provisioning/datasources/prometheus.yml \
  && ok "datasource uid matches the dashboard's" || bad "datasource uid differs from the dashboard's"
# Anonymous visitors may look, not administer; the dashboard stays provisioned.
if out=$($T python3 - docker-compose.yml <<'PY' 2>&1
import sys, yaml
g = yaml.safe_load(open(sys.argv[1]))["services"]["grafana"]
env = g.get("environment") or {}
if isinstance(env, list):
    env = dict(e.split("=", 1) for e in env)
role = str(env.get("GF_AUTH_ANONYMOUS_ORG_ROLE", ""))
if env.get("GF_AUTH_ANONYMOUS_ENABLED") in ("true", True) and role != "Viewer":
    sys.exit(f"GF_AUTH_ANONYMOUS_ORG_ROLE is {role!r}: anonymous users must be Viewer")
vols = [str(v) for v in g.get("volumes", [])]
for want in ("./config/grafana/provisioning:/etc/grafana/provisioning",
             "./config/grafana/dashboards:/var/lib/grafana/dashboards"):
    if not any(v.startswith(want) for v in vols):
        sys.exit(f"volume {want} missing: the dashboard is not provisioned")
print(f"anonymous role {role}")
PY
); then
  grep -q '/var/lib/grafana/dashboards' config/grafana/provisioning/dashboards/canary-proxy.yml \
    && ok "grafana: $out, dashboard provisioned from config/grafana/" \
    || bad "grafana: the dashboard provider does not read /var/lib/grafana/dashboards"
else
  bad "grafana: $out"
fi

step "proxy config"
$T cargo build --quiet --bin canary-proxy
for f in config/compose/*.yaml; do
  if out=$(CANARY_ADMIN_TOKEN=$token $T target/debug/canary-proxy check --config "$f" 2>&1); then
    ok "canary-proxy check $f: $out"
  else
    bad "canary-proxy check $f:"; printf '%s\n' "$out" | sed 's/^/        /'
  fi
  # The admin API listens beyond loopback: no token, or a placeholder, is refused.
  for t in unset change-me; do
    if [ "$t" = unset ]; then
      out=$(env -u CANARY_ADMIN_TOKEN $T target/debug/canary-proxy check --config "$f" 2>&1) && rc=0 || rc=$?
    else
      out=$(CANARY_ADMIN_TOKEN=$t $T target/debug/canary-proxy check --config "$f" 2>&1) && rc=0 || rc=$?
    fi
    if [ "$rc" = 2 ] && printf '%s' "$out" | grep -q '^admin.token: '; then
      ok "canary-proxy check $f refuses the token ($t): $(printf '%s' "$out" | head -1 | cut -c1-90)"
    else
      bad "canary-proxy check $f with token $t: exit $rc: $out"
    fi
  done
done
sh -n config/compose/load.sh && ok "config/compose/load.sh parses (sh -n)" || bad "config/compose/load.sh syntax"

step "Dockerfile"
grep -q '^FROM rust:.* AS build' Dockerfile && grep -q '^FROM debian:.*-slim' Dockerfile \
  && ok "multi-stage: rust builder -> debian-slim runtime" || bad "Dockerfile is not rust -> debian-slim multi-stage"
grep -q 'COPY --from=build /src/target/release/canary-proxy' Dockerfile && ok "runtime copies the release binary" || bad "binary copy missing"
[ -d config/compose ] && ok "COPY config/compose/ exists" || bad "config/compose missing"
# The dependency-caching layer stubs every target Cargo.toml declares, and no
# cargo failure is hidden.
if ! bash scripts/check-dockerfile.sh; then fail=1; fi

step "rehearsal without Docker (same binary, config and load script; service names -> loopback, pauses shortened)"
pids=()
work=$(mktemp -d)
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$work" "$rules"
}
trap cleanup EXIT
read -r p_stable p_canary p_proxy p_admin < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
bin=target/debug/canary-proxy
$bin upstream --role stable --version v1-stable --listen 127.0.0.1:$p_stable >"$work/stable.log" 2>&1 & pids+=($!)
$bin upstream --role canary --version v2-canary --listen 127.0.0.1:$p_canary >"$work/canary.log" 2>&1 & pids+=($!)
sed -e "s#http://stable:8080#http://127.0.0.1:$p_stable#" -e "s#http://canary:8080#http://127.0.0.1:$p_canary#" \
    -e "s#0.0.0.0:8080#127.0.0.1:$p_proxy#" -e "s#0.0.0.0:9901#127.0.0.1:$p_admin#" -e "s#pause: 30s#pause: 2s#g" \
    config/compose/canary-proxy.yaml >"$work/proxy.yaml"
CANARY_ADMIN_TOKEN=$token $bin run --config "$work/proxy.yaml" >"$work/proxy.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$p_admin/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
PROXY=http://127.0.0.1:$p_proxy/ ADMIN=http://127.0.0.1:$p_admin CANARY=http://127.0.0.1:$p_canary \
  LOOPS=3 FAULT_RATE=0.4 FAULT_AFTER=2 sh config/compose/load.sh >"$work/load.log" 2>&1 & pids+=($!)
phase=""
for _ in $(seq 300); do
  st=$(curl -s --max-time 1 "http://127.0.0.1:$p_admin/api/v1/status" || true)
  phase=$(printf '%s' "$st" | jq -r '.phase // empty' 2>/dev/null || true)
  [ "$phase" = Degraded ] && break
  sleep 0.1
done
if [ "$phase" = Degraded ]; then
  ok "load.sh turned the canary bad at 50%; the proxy aborted: $(printf '%s' "$st" | jq -r .message)"
  curl -s "http://127.0.0.1:$p_admin/metrics" | grep -q '^canary_aborts_total.* 1' && ok "canary_aborts_total is 1 on /metrics" || bad "canary_aborts_total not 1"
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$p_admin/api/v1/retry")
  [ "$code" = 401 ] && ok "admin POST without the token: 401" || bad "admin POST without the token: $code"
else
  bad "no abort within 30 s (phase ${phase:-?}); load log:"; sed 's/^/        /' "$work/load.log"; tail -5 "$work/proxy.log" | sed 's/^/        /'
fi

if [ "$fail" = 0 ]; then echo "check-compose: all checks passed"; else echo "check-compose: FAILED"; fi
exit "$fail"
