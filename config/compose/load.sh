#!/bin/sh
# Load generator for docker compose: a few curl loops through the proxy; once
# the canary reaches 50% it waits FAULT_AFTER seconds and makes the canary fail
# FAULT_RATE of its requests, so the proxy's guard has something to catch.
set -u
PROXY=${PROXY:-http://proxy:8080/}
ADMIN=${ADMIN:-http://proxy:9901}
CANARY=${CANARY:-http://canary:8080}
LOOPS=${LOOPS:-4}
FAULT_RATE=${FAULT_RATE:-0.4}
FAULT_AFTER=${FAULT_AFTER:-30}

# Stop the loops with the script (as PID 1 in a container, sh ignores TERM without a trap).
loops=""
trap 'kill $loops 2>/dev/null; exit 0' TERM INT
i=0
while [ "$i" -lt "$LOOPS" ]; do
  ( while true; do curl -s -o /dev/null --max-time 5 "$PROXY" || sleep 0.2; done ) &
  loops="$loops $!"
  i=$((i + 1))
done
echo "load: $LOOPS loops against $PROXY"

if [ "$FAULT_RATE" != "0" ]; then
  until curl -s --max-time 2 "$ADMIN/api/v1/status" | grep -Eq '"canary_weight": *50(\.0+)?[,}]'; do
    sleep 2 & wait $!
  done
  echo "load: canary at 50%; turning its errors on in ${FAULT_AFTER}s"
  sleep "$FAULT_AFTER" & wait $!
  curl -s -X PUT --max-time 2 -d "{\"error_rate\": $FAULT_RATE}" "$CANARY/api/fault"
  echo
  echo "load: canary now fails ${FAULT_RATE} of requests; watch http://localhost:9901/ and Grafana"
fi
wait
