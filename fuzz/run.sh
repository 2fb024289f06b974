#!/usr/bin/env bash
# Runs each fuzz target for a fixed budget in one process (one core), and appends its final stats to
# fuzz/stats/<target>.log. Usage: fuzz/run.sh [seconds] [target...]
# Needs nightly and cargo-fuzz (`cargo install cargo-fuzz`); seeds come from fuzz/seed.py.
set -u
cd "$(dirname "$0")"
secs=${1:-240}; shift || true
targets=${*:-envelope fragment message clixml jwt transcript cmdline}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/../target/fuzz}
[ -d corpus ] || python3 seed.py
mkdir -p stats artifacts
for t in $targets; do
  mkdir -p "corpus/$t" "artifacts/$t"
  start=$(date +%s)
  cargo +nightly fuzz run "$t" "corpus/$t" -- \
    -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"stats/$t.log" 2>&1
  echo "exit=$? wall=$(( $(date +%s) - start ))s corpus_files=$(ls "corpus/$t" | wc -l)" >>"stats/$t.log"
  tail -n 1 "stats/$t.log"
done
