#!/usr/bin/env bash
# Bounded fuzzing of the three cargo-fuzz targets in fuzz/ (issue #7):
#   config  - config text -> parse + validate (as `canary-proxy check`), snapshot build
#   admin   - admin API bodies/queries/Authorization (PUT /api/v1/weight, ...)
#   routing - routing::decide with its invariants
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 20)
# Installs cargo-fuzz when missing, builds every target, runs each for the given
# time starting from fuzz/seeds/<target> (new inputs go to fuzz/corpus/<target>,
# which is not committed), and exits non-zero if any target crashed, panicked,
# hung (one input > 60 s) or went over 2 GiB RSS; the reproducer is in fuzz/artifacts/<target>/.
# (Every input runs in well under 1 ms; the 60 s allows for a niced run starved
# by other load: at 10 s a shared 2-core machine produced false timeouts that
# replay in 0 ms.)
# Reproduce one: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> <artifact>)
#
# Only stable Rust is needed: RUSTC_BOOTSTRAP=1 lets it accept cargo-fuzz's -Z flags.
# Built without a sanitizer (-s none): the code under test is safe Rust, and
# without ASan the build and every run are faster; debug assertions and overflow
# checks stay on (cargo-fuzz's default).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-20}"
targets=(config admin routing)
export RUSTC_BOOTSTRAP=1 CARGO_TERM_COLOR=never
start=$(date +%s)
t() { echo "$(( $(date +%s) - start ))s"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    nice -n 19 cargo install cargo-fuzz --locked --version 0.13.2
fi
echo "== building ${targets[*]} ($(t))"
nice -n 19 cargo fuzz build -s none

failed=()
for target in "${targets[@]}"; do
    echo "== fuzz $target for ${secs}s ($(t))"
    mkdir -p "corpus/$target"
    log="target/fuzz-$target.log"
    if nice -n 19 cargo fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -timeout=60 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+.*DONE' "$log" || true
    else
        failed+=("$target")
        tail -n 60 "$log"
        echo "!! $target failed; reproducer(s): $(ls "artifacts/$target" 2>/dev/null | tr '\n' ' ')"
    fi
done
echo "== fuzz done ($(t))"
if ((${#failed[@]})); then
    echo "fuzz targets failed: ${failed[*]}" >&2
    exit 1
fi
