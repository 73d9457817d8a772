#!/usr/bin/env python3
"""PUT /api/v1/weight RATE times a second for SECONDS on one keep-alive
connection, alternating 19.5/20.5 (the split stays ~20%). Prints the count."""
import http.client, sys, time

host, port, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
conn = http.client.HTTPConnection(host, port, timeout=5)
sent = ok = 0
start = time.monotonic()
while time.monotonic() - start < seconds:
    w = 19.5 if sent % 2 else 20.5
    conn.request("PUT", "/api/v1/weight", body=f'{{"canary_weight": {w}}}', headers={"content-type": "application/json"})
    r = conn.getresponse(); r.read()
    sent += 1; ok += r.status == 200
    next_at = start + sent / rate
    time.sleep(max(0.0, next_at - time.monotonic()))
print(f"CHURN sent={sent} ok={ok}")
