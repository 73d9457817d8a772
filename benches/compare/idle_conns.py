#!/usr/bin/env python3
"""Open N keep-alive connections to HOST:PORT, send one request on each, read the
response, then hold them idle for HOLD seconds (the caller measures RSS meanwhile).
Prints READY when all are open. Bounded: exits after HOLD seconds."""
import socket, sys, time

host, port, n, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
req = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
socks = []
for i in range(n):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(req)
    socks.append(s)
ok = 0
for s in socks:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    if data.startswith(b"HTTP/1.1 200"):
        ok += 1
print(f"READY {ok}/{n}", flush=True)
time.sleep(hold)
