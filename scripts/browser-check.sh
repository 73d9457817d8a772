#!/usr/bin/env bash
# Loads the proxy's status page in headless Chromium while `canary-proxy demo
# --keep-running` holds after its abort (the page is opened only then); asserts
# the page shows the abort (phase Degraded, the abort message and the span of
# its figures, the verdict's reasons), charts drawn from the server's history
# with the points from before the abort (the 20% and 50% steps), and buttons
# that would be refused disabled with their reasons (retry enabled). Saves a
# screenshot under target/browser-check/. Bounded; cleans up everything it
# started. Installs Debian's chromium when no Chromium is found.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/browser-check
mkdir -p "$out"
log=$out/demo.log

chrome=""
for c in chromium chromium-browser google-chrome; do command -v "$c" >/dev/null 2>&1 && { chrome=$c; break; }; done
if [ -z "$chrome" ]; then
  echo "installing chromium"
  timeout 120 apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq chromium >/dev/null
  chrome=chromium
fi

timeout 900 cargo build --quiet --bin canary-proxy

demo_pid=""
profile=$(mktemp -d)
cleanup() {
  if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -INT "$demo_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$demo_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$demo_pid" 2>/dev/null || true
  fi
  for p in $live_pid $chrome_pid; do kill "$p" 2>/dev/null || true; done
  rm -rf "$profile" "$profile.cdp.js"
}
trap cleanup EXIT

timeout 150 target/debug/canary-proxy demo --keep-running >"$log" 2>&1 &
demo_pid=$!

for _ in $(seq 100); do grep -q 'status page' "$log" && break; sleep 0.1; done
url=$(grep -o 'status page *http://[0-9.:]*/' "$log" | head -1 | grep -o 'http://.*' || true)

chrome_flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --user-data-dir="$profile" --virtual-time-budget=4000)

# During the story, while the plan waits at 20% (a 6 s pause) or at 50%
# (pause until promote): the page says what it waits for.
early=""
if [ -n "$url" ]; then
  timeout 30 "$chrome" "${chrome_flags[@]}" --window-size=1400,1000 --virtual-time-budget=1500 \
    --dump-dom "$url" >"$out/status-early.html" 2>/dev/null && early=$out/status-early.html
fi

# A live screenshot over the whole story needs real time (--screenshot only
# gives virtual time): with node >= 20, drive Chromium over the DevTools
# protocol and capture after LIVE_WAIT ms. Optional; the DOM checks below are not.
live_pid=""; chrome_pid=""
if [ -n "$url" ] && command -v node >/dev/null 2>&1 && node --experimental-websocket -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
  cat >"$profile.cdp.js" <<'JS'
const [port, url, wait, out] = process.argv.slice(2);
(async () => {
  let v;
  for (let i = 0; i < 50 && !v; i++) {
    try { v = await (await fetch(`http://127.0.0.1:${port}/json/new?${url}`, {method: "PUT"})).json(); }
    catch (e) { await new Promise((r) => setTimeout(r, 100)); }
  }
  const ws = new WebSocket(v.webSocketDebuggerUrl);
  let id = 0; const pending = {};
  const send = (method, params = {}) => new Promise((res) => { const i = ++id; pending[i] = res; ws.send(JSON.stringify({id: i, method, params})); });
  ws.onmessage = (m) => { const d = JSON.parse(m.data); if (d.id && pending[d.id]) pending[d.id](d.result); };
  await new Promise((r) => ws.onopen = r);
  await send("Emulation.setDeviceMetricsOverride", {width: 1400, height: 1000, deviceScaleFactor: 1, mobile: false});
  await new Promise((r) => setTimeout(r, +wait));
  const shot = await send("Page.captureScreenshot", {format: "png"});
  require("fs").writeFileSync(out, Buffer.from(shot.data, "base64"));
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
JS
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  timeout 60 "$chrome" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile/live" --remote-debugging-port="$port" about:blank >/dev/null 2>&1 &
  chrome_pid=$!
  timeout 50 node --experimental-websocket "$profile.cdp.js" "$port" "$url" "${LIVE_WAIT:-20000}" "$out/status-live.png" 2>"$out/live.err" &
  live_pid=$!
fi

# Wait for the demo's summary (it then holds everything up).
for _ in $(seq 900); do
  grep -q '^summary:' "$log" && break
  kill -0 "$demo_pid" 2>/dev/null || { echo "demo exited early:"; tail -20 "$log"; exit 1; }
  sleep 0.1
done
grep '^summary:' "$log" || { echo "no summary within 90 s:"; tail -20 "$log"; exit 1; }
url=$(grep -o 'status page *http://[0-9.:]*/' "$log" | head -1 | grep -o 'http://.*')
echo "status page: $url"

timeout 60 "$chrome" "${chrome_flags[@]}" --window-size=1400,1000 --dump-dom "$url" >"$out/status.html" 2>/dev/null
# Tall enough for the whole page (verdict and events included).
timeout 60 "$chrome" "${chrome_flags[@]}" --window-size=1400,1400 --screenshot="$out/status.png" "$url" >/dev/null 2>&1

if [ -n "$live_pid" ]; then
  if wait "$live_pid"; then echo "live screenshot: $out/status-live.png"; else echo "live screenshot failed (optional)"; fi
  kill "$chrome_pid" 2>/dev/null || true
fi

fail=0
check() { if grep -q -- "$2" "$out/status.html"; then echo "  ok    $1"; else echo "  FAIL  $1"; fail=1; fi; }
check "phase Degraded shown"           'id="phase" class="phase Degraded">Degraded<'
check "abort banner with the message"  'class="banner on"[^>]*>RolloutAborted'
check "canary weight 0%"               'id="weight">0%<'
check "abort event listed"             'k-aborted'
check "verdict table filled"           'class="res Failed"'
check "verdict rows say why"           'class="reason[^"]*">over the limit with confidence'
check "verdict figures name their span" 'since the last reset'
check "banner says which span"         'class="note">The canary figures in this message are over'
# Opened after the abort, the charts still show what led up to it (server history).
check "weight chart: 20% and 50% steps, then 0" 'id="c-w"[^>]*data-levels="[^"]*20,50,0'
check "weight chart marks the abort"   'id="c-w"[^>]*data-aborts="[0-9]'
pts=$(grep -o 'id="c-rps"[^>]*data-points="[0-9]*"' "$out/status.html" | grep -o 'data-points="[0-9]*"' | grep -o '[0-9]*' || echo 0)
if [ "${pts:-0}" -ge 20 ]; then echo "  ok    requests chart has $pts points"; else echo "  FAIL  requests chart has ${pts:-0} points (want >= 20)"; fail=1; fi
# Buttons that would answer 409 are disabled and say why; retry is the way out.
check "promote disabled with its reason" 'data-act="promote" disabled="" title="Not now: the canary is aborted: retry first"'
check "resume disabled with its reason"  'data-act="resume" disabled="" title="Not now: the canary is aborted: retry first"'
check "set weight disabled with its reason" 'data-act="weight" disabled="" title="Not now: the canary is aborted: retry first"'
if grep -o '<button data-act="retry"[^>]*>' "$out/status.html" | grep -q disabled; then
  echo "  FAIL  retry enabled after the abort"; fail=1
else
  echo "  ok    retry enabled after the abort"
fi
check "abort stays enabled"            '<button data-act="abort" class="danger" title="weight 0'
# The early page, when Chromium came up during a pause: a countdown that fits the 6 s pause,
# or the hold at 50% waiting for promote.
rem=""
[ -n "$early" ] && rem=$(sed -n 's/.*id="countdown" data-remaining-ms="\([0-9][0-9]*\)".*/\1/p' "$early" | head -1)
if [ -n "$rem" ]; then
  if grep -q 'pause 6 s: next step in' "$early" && [ "$rem" -le 6000 ]; then
    echo "  ok    timed pause counts down (${rem} ms left)"
  else echo "  FAIL  timed pause countdown: ${rem} ms"; fail=1; fi
elif [ -n "$early" ] && grep -q 'waiting for <b>promote</b>' "$early"; then
  echo "  ok    the hold at 50% says it waits for promote"
else
  echo "  skip  the page was not loaded during one of the plan's pauses"
fi
[ -s "$out/status.png" ] && echo "  ok    screenshot $out/status.png" || { echo "  FAIL  no screenshot"; fail=1; }
exit "$fail"
