#!/usr/bin/env bash
# Run the benchmarks in turn; arguments (e.g. --quick) are passed to each.
# Usage: bench/run_all.sh [--quick]      (from anywhere; uses the project's .venv if present)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python=python3
cd "$root"
for name in lifecycle inbox sla_scan sms_throughput customer360 screen_pop long_loop dunning_round reports http_load; do
    echo "=== bench/$name.py $*"
    "$python" "bench/$name.py" "$@"
    echo
done
