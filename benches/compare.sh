#!/usr/bin/env bash
# Side-by-side load comparison on this machine: direct-to-upstream, NGINX, HAProxy
# and canary-proxy doing the same 80/20 split. Each proxy runs alone, pinned to
# core 0 with one worker; the upstream pair (nginx, 1 worker) and wrk share core 1.
# Because that core saturates near 40k req/s, the headline figure is the proxy's
# CPU time per request (user+sys of its processes / requests served), not req/s.
#
# Usage: benches/compare.sh            (ROUNDS, DURATION, CONNS, RATE env overrides)
# Loopback only; every phase is bounded by `timeout`; the whole run takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HERE=$ROOT/benches/compare
ROUNDS=${ROUNDS:-3}        # interleaved rounds of the max-throughput run
DURATION=${DURATION:-8}    # seconds per wrk run
CONNS=${CONNS:-50}         # wrk connections (keep-alive)
RATE=${RATE:-5000}         # fixed offered rate for the latency runs (below every proxy's max)
IDLE=${IDLE:-8000}         # idle keep-alive connections (HAProxy needs 2 fds each; the fd hard limit here is 20000)
WORK=$(mktemp -d /tmp/cp-compare.XXXXXX)
OUT=${OUT:-$ROOT/benches/results/latest.md}
PROXY_CORE=0; LOAD_CORE=1
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need haproxy || ! need wrk || ! need h2load; then
  echo "installing nginx haproxy wrk nghttp2-client ..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx haproxy wrk nghttp2-client >/dev/null
fi
# The same proxy built without per-request recording prices the telemetry in
# the same run (feature `bench-no-record`; built first so target/release ends
# up holding the normal binary).
cargo build --release --quiet --features bench-no-record
cp "$ROOT/target/release/canary-proxy" "$WORK/canary-proxy-norecord"
cargo build --release --quiet
BIN=$ROOT/target/release/canary-proxy

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 did not open" >&2; return 1; }

for p in 18081 18082 18090 18091 18092 18093 18095; do
  if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "port $p is in use: stop what listens there first" >&2; exit 1; fi
done

# ---- upstream pair: nginx, one worker, core 1 -------------------------------
cat > "$WORK/upstream.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/upstream.pid; error_log $WORK/upstream.err warn;
events { worker_connections 19000; }
http {
  access_log off; keepalive_requests 10000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:18081 backlog=4096; location / { add_header x-version stable; return 200 "hello from stable\n"; } }
  server { listen 127.0.0.1:18082 backlog=4096; location / { add_header x-version canary; return 200 "hello from canary\n"; } }
}
CONF
taskset -c $LOAD_CORE nginx -c "$WORK/upstream.conf" -e "$WORK/upstream.err" & PIDS+=($!)
wait_port 18081; wait_port 18082

# ---- the proxies, each started only for its own runs -------------------------
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/nginx.pid; error_log $WORK/nginx.err warn;
events { worker_connections 19000; }
http {
  access_log off; keepalive_requests 10000000; keepalive_timeout 300s;
  upstream stable { server 127.0.0.1:18081; keepalive 128; keepalive_requests 10000000; }
  upstream canary { server 127.0.0.1:18082; keepalive 128; keepalive_requests 10000000; }
  split_clients "\${request_id}" \$pool { 20% canary; * stable; }
  server {
    listen 127.0.0.1:18090 backlog=4096; listen 127.0.0.1:18095 http2;
    location / {
      proxy_pass http://\$pool; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Request-Id \$request_id;
    }
  }
}
CONF
cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 9500
defaults
  mode http
  timeout connect 1s
  timeout client 300s
  timeout server 30s
  timeout http-keep-alive 300s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:18091
  unique-id-format %{+X}o%ci%cp%fp%Ts%rt
  http-request set-header X-Request-Id %[unique-id]
  http-request set-header X-Forwarded-Proto http
  default_backend be
backend be
  balance roundrobin
  server stable 127.0.0.1:18081 weight 80
  server canary 127.0.0.1:18082 weight 20
CONF
cat > "$WORK/canary-proxy.yaml" <<CONF
listen: 127.0.0.1:18092
workers: 1
admin: { listen: 127.0.0.1:18093 }
upstreams:
  stable: { version: v1, endpoints: [http://127.0.0.1:18081] }
  canary: { version: v2, endpoints: [http://127.0.0.1:18082] }
routing: { canary_weight: 20 }
limits: { max_connections: 30000 }
timeouts: { idle: 300s }
CONF
"$BIN" check --config "$WORK/canary-proxy.yaml" >/dev/null

start_proxy() { # name -> sets PROXY_PID, PORT
  case $1 in
    direct) PROXY_PID=""; PORT=18081 ;;
    nginx) taskset -c $PROXY_CORE nginx -c "$WORK/nginx.conf" -e "$WORK/nginx.err" & PROXY_PID=$!; PORT=18090 ;;
    haproxy) taskset -c $PROXY_CORE haproxy -f "$WORK/haproxy.cfg" -db >/dev/null 2>&1 & PROXY_PID=$!; PORT=18091 ;;
    canary-proxy) RUST_LOG=warn taskset -c $PROXY_CORE "$BIN" run --config "$WORK/canary-proxy.yaml" 2>"$WORK/cp.err" & PROXY_PID=$!; PORT=18092 ;;
    no-recording) RUST_LOG=warn taskset -c $PROXY_CORE "$WORK/canary-proxy-norecord" run --config "$WORK/canary-proxy.yaml" 2>"$WORK/cp.err" & PROXY_PID=$!; PORT=18092 ;;
  esac
  [ -n "$PROXY_PID" ] && PIDS+=("$PROXY_PID")
  wait_port $PORT
}
stop_proxy() { [ -n "${PROXY_PID:-}" ] && { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; }; PROXY_PID=""; }

# user+sys clock ticks of a process and its children threads/processes (nginx workers)
proc_ticks() {
  local pid=$1 total=0 p
  [ -z "$pid" ] && { echo 0; return; }
  for p in $pid $(pgrep -P "$pid" || true); do
    [ -r /proc/$p/stat ] || continue
    total=$(( total + $(awk '{print $14 + $15}' /proc/$p/stat) ))
  done
  echo $total
}
proc_rss_kb() {
  local pid=$1 total=0 p
  [ -z "$pid" ] && { echo 0; return; }
  for p in $pid $(pgrep -P "$pid" || true); do
    [ -r /proc/$p/status ] || continue
    total=$(( total + $(awk '/VmRSS/{print $2}' /proc/$p/status) ))
  done
  echo $total
}
steal_ticks() { awk '/^cpu /{print $9}' /proc/stat; }
field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p"; }
CLK=$(getconf CLK_TCK)

declare -A RPS CPU_US P50 P99 P999 RSS SPLIT NOTE
run_max() { # name round
  local name=$1 t0 t1 out
  start_proxy "$name"
  timeout 10 wrk -t1 -c$CONNS -d1s "http://127.0.0.1:$PORT/" >/dev/null 2>&1 || true   # warm-up: pools, caches
  t0=$(proc_ticks "$PROXY_PID")
  out=$(timeout $((DURATION + 20)) taskset -c $LOAD_CORE wrk -t1 -c$CONNS -d${DURATION}s -s "$HERE/max.lua" "http://127.0.0.1:$PORT/" | grep RESULT)
  t1=$(proc_ticks "$PROXY_PID")
  local req dur
  req=$(echo "$out" | field requests); dur=$(echo "$out" | field duration_us)
  RPS[$name]="${RPS[$name]:-} $(( req * 1000000 / dur ))"
  if [ -n "$PROXY_PID" ]; then
    CPU_US[$name]="${CPU_US[$name]:-} $(awk -v t=$((t1 - t0)) -v c=$CLK -v r=$req 'BEGIN{printf "%.1f", t / c / r * 1e6}')"
  fi
  RSS[$name]=$(proc_rss_kb "${PROXY_PID:-}")
  stop_proxy
}
paced() { # port -> RESULT line of a latency run at $RATE req/s
  timeout $((DURATION + 20)) taskset -c $LOAD_CORE wrk -t1 -c$CONNS -d${DURATION}s -s "$HERE/latency.lua" "http://127.0.0.1:$1/" -- $(( CONNS * 1000 / RATE )) | grep RESULT
}
run_paced() { # name -> latency at a fixed offered rate (one round); observed split once
  local name=$1 out
  start_proxy "$name"
  timeout 10 wrk -t1 -c$CONNS -d1s "http://127.0.0.1:$PORT/" >/dev/null 2>&1 || true
  out=$(paced $PORT)
  P50[$name]="${P50[$name]:-} $(echo "$out" | field p50_us)"; P99[$name]="${P99[$name]:-} $(echo "$out" | field p99_us)"
  P999[$name]="${P999[$name]:-} $(echo "$out" | field p999_us)"
  if [ -z "${SPLIT[$name]:-}" ]; then
    local s c
    out=$(timeout 20 taskset -c $LOAD_CORE wrk -t1 -c$CONNS -d3s -s "$HERE/paced.lua" "http://127.0.0.1:$PORT/" -- 10 | grep RESULT)
    s=$(echo "$out" | field stable); c=$(echo "$out" | field canary)
    SPLIT[$name]=$(awk -v s=$s -v c=$c 'BEGIN{ if (s + c > 0) printf "%.1f%%", 100 * c / (s + c); else print "-" }')
  fi
  stop_proxy
}

NAMES=(direct nginx haproxy canary-proxy)
steal0=$(steal_ticks); all0=$(awk '/^cpu /{s=0; for(i=2;i<=NF;i++) s+=$i; print s}' /proc/stat)
echo "== max throughput: $ROUNDS interleaved rounds x ${DURATION}s, $CONNS connections" >&2
for r in $(seq 1 "$ROUNDS"); do for n in "${NAMES[@]}" no-recording; do echo "   round $r: $n" >&2; run_max "$n"; done; done
echo "== latency at a fixed $RATE req/s: $ROUNDS interleaved rounds" >&2
for r in $(seq 1 "$ROUNDS"); do for n in "${NAMES[@]}"; do run_paced "$n"; done; done

# ---- weight changes under load: 100 PUT /api/v1/weight per second ------------
# Interleaved with plain rounds on the same proxy process, so both see the same machine.
echo "== canary-proxy p99 at $RATE req/s, with and without 100 weight changes/s" >&2
start_proxy canary-proxy
timeout 10 wrk -t1 -c$CONNS -d1s "http://127.0.0.1:$PORT/" >/dev/null 2>&1 || true
CHURN_P99=""; CALM_P99=""; CHURN_SENT=0
for r in $(seq 1 "$ROUNDS"); do
  CALM_P99="$CALM_P99 $(paced 18092 | field p99_us)"
  timeout $((DURATION + 10)) taskset -c $LOAD_CORE python3 "$HERE/weight_churn.py" 127.0.0.1 18093 100 "$DURATION" > "$WORK/churn.out" &
  CHURN=$!
  CHURN_P99="$CHURN_P99 $(paced 18092 | field p99_us)"
  wait $CHURN || true
  CHURN_SENT=$(( CHURN_SENT + $(sed -n 's/.*ok=\([0-9]*\).*/\1/p' "$WORK/churn.out") ))
done
stop_proxy

# ---- memory: idle keep-alive connections --------------------------------------
echo "== RSS with $IDLE idle keep-alive connections" >&2
declare -A CONN_BYTES
for n in nginx haproxy canary-proxy; do
  start_proxy "$n"
  base=$(proc_rss_kb "$PROXY_PID")
  python3 "$HERE/idle_conns.py" 127.0.0.1 "$PORT" "$IDLE" 6 > "$WORK/idle.out" &
  IDLER=$!
  for _ in $(seq 1 200); do grep -q READY "$WORK/idle.out" 2>/dev/null && break; sleep 0.1; done
  sleep 0.5
  loaded=$(proc_rss_kb "$PROXY_PID")
  CONN_BYTES[$n]=$(( (loaded - base) * 1024 / IDLE ))
  NOTE[$n]="$(cat "$WORK/idle.out" | head -1)"
  kill $IDLER 2>/dev/null || true; wait $IDLER 2>/dev/null || true
  stop_proxy
done

# ---- h2 (h2c prior knowledge) against NGINX -----------------------------------
echo "== h2c: h2load 10 connections x 10 streams" >&2
declare -A H2
for n in nginx canary-proxy; do
  start_proxy "$n"; port=$PORT; [ "$n" = nginx ] && port=18095
  t0=$(proc_ticks "$PROXY_PID")
  out=$(timeout 60 taskset -c $LOAD_CORE h2load -c10 -m10 -n 100000 "http://127.0.0.1:$port/" 2>/dev/null | grep -E '^finished in|requests:' | tr '\n' ' ')
  t1=$(proc_ticks "$PROXY_PID")
  rps=$(echo "$out" | sed -n 's/.* \([0-9.]*\) req\/s.*/\1/p'); ok=$(echo "$out" | sed -n 's/.* \([0-9]*\) succeeded.*/\1/p')
  H2[$n]="$(printf '%.0f' "${rps:-0}") req/s, $(awk -v t=$((t1 - t0)) -v c=$CLK -v r=${ok:-1} 'BEGIN{printf "%.1f", t / c / r * 1e6}') µs CPU/req (${ok:-0} ok)"
  stop_proxy
done
steal1=$(steal_ticks); all1=$(awk '/^cpu /{s=0; for(i=2;i<=NF;i++) s+=$i; print s}' /proc/stat)

# ---- report --------------------------------------------------------------------
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END{ if (NR == 0) print "-"; else print a[int((NR + 1) / 2)] }'; }
{
  echo "# canary-proxy vs NGINX vs HAProxy — $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r)"
  echo
  echo "One pinned core per proxy (core $PROXY_CORE, one worker); upstream pair (nginx) and wrk on core $LOAD_CORE."
  echo "Max throughput: median of $ROUNDS interleaved ${DURATION}s rounds, $CONNS keep-alive connections."
  echo "Latency: fixed offered rate $RATE req/s (paced wrk, median of $ROUNDS interleaved rounds), added = proxy minus direct. Steal time during the run: $(awk -v s=$((steal1 - steal0)) -v a=$((all1 - all0)) 'BEGIN{printf "%.2f%%", 100 * s / a}')."
  echo
  echo "| target | req/s (max) | proxy CPU µs/req | p50 µs | p99 µs | p99.9 µs | p99 added µs | canary share | RSS KiB | bytes/idle conn |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for n in "${NAMES[@]}"; do
    p99=$(echo "${P99[$n]}" | median); p99d=$(echo "${P99[direct]}" | median)
    echo "| $n | $(echo "${RPS[$n]}" | median) | $(echo "${CPU_US[$n]:-}" | median) | $(echo "${P50[$n]}" | median) | $p99 | $(echo "${P999[$n]}" | median) | $(( p99 - p99d )) | ${SPLIT[$n]} | ${RSS[$n]} | ${CONN_BYTES[$n]:--} |"
  done
  echo
  cp_cpu=$(echo "${CPU_US[canary-proxy]}" | median); ng_cpu=$(echo "${CPU_US[nginx]}" | median); ha_cpu=$(echo "${CPU_US[haproxy]}" | median)
  cp_rps=$(echo "${RPS[canary-proxy]}" | median); ng_rps=$(echo "${RPS[nginx]}" | median); ha_rps=$(echo "${RPS[haproxy]}" | median)
  echo "Ratios (canary-proxy / other; CPU: lower is better, throughput: higher is better):"
  echo
  echo "- CPU per request: / NGINX $(awk -v a=$cp_cpu -v b=$ng_cpu 'BEGIN{printf "%.2f", a / b}'), / HAProxy $(awk -v a=$cp_cpu -v b=$ha_cpu 'BEGIN{printf "%.2f", a / b}')"
  nr_cpu=$(echo "${CPU_US[no-recording]}" | median); nr_rps=$(echo "${RPS[no-recording]}" | median)
  echo "- recording on vs off (same binary built with \`--features bench-no-record\`): CPU per request ${cp_cpu} vs ${nr_cpu} µs ($(awk -v a=$cp_cpu -v b=$nr_cpu 'BEGIN{printf "%+.1f%%", 100 * (a / b - 1)}')), throughput ${cp_rps} vs ${nr_rps} req/s ($(awk -v a=$cp_rps -v b=$nr_rps 'BEGIN{printf "%+.1f%%", 100 * (a / b - 1)}'))"
  echo "- throughput: / NGINX $(awk -v a=$cp_rps -v b=$ng_rps 'BEGIN{printf "%.2f", a / b}'), / HAProxy $(awk -v a=$cp_rps -v b=$ha_rps 'BEGIN{printf "%.2f", a / b}')"
  churn=$(echo "$CHURN_P99" | median); calm=$(echo "$CALM_P99" | median)
  echo "- p99 with 100 weight changes/s ($CHURN_SENT accepted over $ROUNDS rounds): ${churn} µs vs ${calm} µs without, same process, interleaved ($(awk -v a=$churn -v b=$calm 'BEGIN{printf "%+.1f%%", 100 * (a / b - 1)}')); per round: with [${CHURN_P99# }] without [${CALM_P99# }]"
  echo "- h2c (h2load -c10 -m10): NGINX ${H2[nginx]}; canary-proxy ${H2[canary-proxy]}"
  echo "- idle connections opened: nginx ${NOTE[nginx]}, haproxy ${NOTE[haproxy]}, canary-proxy ${NOTE[canary-proxy]}"
} | tee "$WORK/report.md"
mkdir -p "$(dirname "$OUT")"; cp "$WORK/report.md" "$OUT"
