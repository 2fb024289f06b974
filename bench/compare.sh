#!/usr/bin/env bash
# One command for the whole comparison: rps vs psrpcore / pypsrp on the same bytes, against
# quick-xml's bare tokenizer and a memcpy, then end to end against the fake Exchange endpoint.
#
#   bench/compare.sh                 # micro N=1000, end to end N=1000,10000,100000
#   bench/compare.sh --quick         # micro N=1000 with fewer repetitions, end to end N=1000
#   bench/compare.sh --no-e2e        # micro benchmarks only
#   N=1000,10000 E2E_N=1000 bench/compare.sh
#
# Creates target/bench-venv (psrpcore 0.3.1, pypsrp 0.9.1) and target/bench-data (the
# workload of ../shared/bench/gen_workload.py) when missing; results go to
# target/bench-results/*.json and the table to stdout (and target/bench-results/report.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${RPS_SHARED_BENCH:-$ROOT/../shared/bench}
VENV=$ROOT/target/bench-venv
export RPS_BENCH_DATA=${RPS_BENCH_DATA:-$ROOT/target/bench-data}
export RPS_BENCH_RESULTS=${RPS_BENCH_RESULTS:-$ROOT/target/bench-results}
N=${N:-1000}
E2E_N=${E2E_N:-1000,10000,100000}
REPS=${REPS:-5}
RPS_REPS=${RPS_REPS:-15}
E2E=1

for arg in "$@"; do
  case "$arg" in
    --quick) N=1000; REPS=2; RPS_REPS=5; E2E_N=1000 ;;
    --no-e2e) E2E=0 ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "unknown argument $arg" >&2; exit 2 ;;
  esac
done

[ -d "$SHARED" ] || { echo "no $SHARED (set RPS_SHARED_BENCH)" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import psrpcore, pypsrp' 2>/dev/null; then
  echo "== creating $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q psrpcore==0.3.1 pypsrp==0.9.1
fi

missing_clixml=()
for n in ${N//,/ }; do
  [ -f "$RPS_BENCH_DATA/mailboxes_$n.clixml" ] || missing_clixml+=("$n")
done
if [ ${#missing_clixml[@]} -gt 0 ] || [ ! -f "$RPS_BENCH_DATA/psrp_1000.frag" ]; then
  want=$(echo "1000 ${missing_clixml[*]:-}" | tr ' ' '\n' | sort -un | paste -sd, -)
  echo "== generating the workload ($want) into $RPS_BENCH_DATA"
  mkdir -p "$RPS_BENCH_DATA"
  "$VENV/bin/python" "$SHARED/gen_workload.py" --clixml "$want" --streams 1000
fi
mkdir -p "$RPS_BENCH_RESULTS"

echo "== building (release)"
cargo build --release -q -p rps-psrp --example perf_compare
if [ "$E2E" = 1 ]; then
  cargo build --release -q -p rps-cli
  cargo build --release -q -p rps-replay --example fake_exchange
fi

echo "== rps (perf_compare)"
"$ROOT/target/release/examples/perf_compare" --n "$N" --reps "$RPS_REPS" --reps-large 5 \
  --json "$RPS_BENCH_RESULTS/rps.json"

echo "== psrpcore"
"$VENV/bin/python" "$SHARED/run_psrpcore.py" --cases deserialize_clixml,serialize_clixml,defrag,receive \
  --n "$N" --reps "$REPS" --reps-large 2 --no-tracemalloc --out "$RPS_BENCH_RESULTS/psrpcore.json"

echo "== pypsrp"
"$VENV/bin/python" "$SHARED/run_pypsrp.py" --cases deserialize_clixml,serialize,defrag,receive \
  --n "$N" --reps "$REPS" --reps-large 2 --no-tracemalloc --out "$RPS_BENCH_RESULTS/pypsrp.json"

rm -f "$RPS_BENCH_RESULTS/e2e.json"
if [ "$E2E" = 1 ]; then
  echo "== end to end (pypsrp capped at N=10,000)"
  python3 "$ROOT/bench/e2e.py" --n "$E2E_N" --pypsrp-max 10000 --python "$VENV/bin/python"
fi

echo
python3 "$ROOT/bench/report.py" | tee "$RPS_BENCH_RESULTS/report.md"
