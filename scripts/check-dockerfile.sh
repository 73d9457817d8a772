#!/usr/bin/env bash
# Static checks of the Dockerfile's dependency-caching layer (no Docker engine needed):
#   1. every target Cargo.toml declares (lib, bins, benches, examples, tests with
#      their default or explicit paths) is stubbed in the layer that builds the
#      dependencies from Cargo.toml + Cargo.lock alone;
#   2. that layer, run as written in an empty directory with `cargo` standing in
#      as `cargo fetch`, gives cargo a manifest it accepts (cargo refuses one whose
#      target files are missing: "can't find `telemetry` bench at ...");
#   3. no RUN that invokes cargo hides a failure (`|| true`, `|| :`, `2>/dev/null`,
#      `>/dev/null 2>&1`, `&>/dev/null`).
# Exit 0 when all hold; prints one ok/FAIL line per check.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
ok()  { printf '  ok    %s\n' "$*"; }
bad() { printf '  FAIL  %s\n' "$*"; fail=1; }

# The cache layer: the RUN instructions after `COPY Cargo.toml Cargo.lock` and
# before the next COPY, continuation lines joined. Also every RUN, for check 3.
layer=$(mktemp); runs=$(mktemp); targets=$(mktemp); work=$(mktemp -d)
trap 'rm -rf "$layer" "$runs" "$targets" "$work"' EXIT
python3 - Dockerfile "$layer" "$runs" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
# Join continuation lines; drop comment lines (Dockerfile comments are whole lines).
lines = [l for l in text.splitlines() if not l.lstrip().startswith("#")]
joined = re.sub(r"\\\n", " ", "\n".join(lines))
instrs = [l.strip() for l in joined.splitlines() if l.strip()]
cache, runs, in_cache = [], [], False
for ins in instrs:
    word = ins.split(None, 1)[0].upper()
    if word == "FROM":
        in_cache = False
    if word == "COPY":
        srcs = ins.split()[1:-1]
        in_cache = "Cargo.toml" in srcs and "." not in srcs
        continue
    if word == "RUN":
        runs.append(ins[3:].strip())
        if in_cache:
            cache.append(ins[3:].strip())
open(sys.argv[2], "w").write("\n".join(cache) + ("\n" if cache else ""))
open(sys.argv[3], "w").write("\n".join(runs) + ("\n" if runs else ""))
PY
if [ ! -s "$layer" ]; then
  bad "Dockerfile has no dependency-caching layer (COPY Cargo.toml Cargo.lock, then RUN ... cargo build)"
else
  grep -q 'cargo build' "$layer" && ok "cache layer builds the dependencies" || bad "cache layer runs no cargo build"
fi

# 1. Every declared target is stubbed.
python3 - Cargo.toml >"$targets" <<'PY'
import os, sys, tomllib
m = tomllib.load(open(sys.argv[1], "rb"))
pkg = m["package"]["name"]
out = []
lib = m.get("lib")
if lib is not None or os.path.exists("src/lib.rs"):
    out.append((lib or {}).get("path", "src/lib.rs"))
bins = m.get("bin", [])
if not bins:
    bins = [{"name": pkg}]
for b in bins:
    out.append(b.get("path") or ("src/main.rs" if b["name"] == pkg else f"src/bin/{b['name']}.rs"))
for kind, d in (("bench", "benches"), ("example", "examples"), ("test", "tests")):
    for t in m.get(kind, []):
        out.append(t.get("path") or f"{d}/{t['name']}.rs")
print("\n".join(dict.fromkeys(out)))
PY
while read -r t; do
  [ -n "$t" ] || continue
  re=$(printf '%s' "$t" | sed 's/[.[\*^$()+?{|]/\\&/g')
  if grep -Eq "(>|touch)[[:space:]]*$re([[:space:]]|\$)" "$layer"; then
    ok "cache layer stubs $t"
  else
    bad "cache layer does not stub $t (declared in Cargo.toml): cargo will refuse the manifest"
  fi
done <"$targets"

# 2. Rehearse the layer: its commands as written, cargo only fetching.
cp Cargo.toml Cargo.lock "$work/"
mkdir -p "$work/bin"
real_cargo=$(command -v cargo)
host=$(rustc -vV | sed -n 's/^host: //p')
cat >"$work/bin/cargo" <<EOF
#!/bin/sh
# Stand-in for the layer's cargo command: parse the manifest (every target file
# must exist) and resolve the lockfile, without compiling.
# A failure is also recorded in a file, in case the layer swallows the exit code.
"$real_cargo" fetch --locked --offline --target "$host" 2>"$work/fetch.err" && exit 0
if grep -q 'failed to parse manifest' "$work/fetch.err"; then
  cat "$work/fetch.err" >&2; touch "$work/cargo-failed"; exit 1
fi
# Not cached offline: fetch from the registry (bounded).
timeout 300 "$real_cargo" fetch --locked --target "$host" && exit 0
touch "$work/cargo-failed"; exit 1
EOF
chmod +x "$work/bin/cargo"
if [ -s "$layer" ] && out=$(cd "$work" && PATH="$work/bin:$PATH" timeout 600 sh -ec "$(cat "$layer")" 2>&1) \
    && [ ! -e "$work/cargo-failed" ]; then
  ok "cache layer rehearsed: cargo accepts the stubbed manifest and the lockfile"
else
  bad "cache layer rehearsal: cargo failed (the layer's build would fail or, hidden, cache nothing):"
  cat "$work/fetch.err" 2>/dev/null | sed 's/^/        /'
  printf '%s\n' "${out:-}" | sed 's/^/        /'
fi

# 3. No cargo failure hidden.
while read -r r; do
  case "$r" in *cargo*) ;; *) continue ;; esac
  if printf '%s\n' "$r" | grep -Eq '\|\|[[:space:]]*(true|:)|2>[[:space:]]*/dev/null|&>[[:space:]]*/dev/null|>[[:space:]]*/dev/null[[:space:]]+2>&1'; then
    bad "a RUN with cargo hides failures: $r"
  else
    ok "RUN with cargo fails the build on error: ${r:0:70}..."
  fi
done <"$runs"

exit "$fail"
