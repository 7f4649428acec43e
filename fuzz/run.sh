#!/usr/bin/env bash
# Fuzz every target for a while (default 60 s each) with cargo-fuzz on the
# machine's stable toolchain (libFuzzer with SanitizerCoverage, no
# sanitizer: -s none needs no nightly; RUSTC_BOOTSTRAP covers the one -Z
# flag cargo-fuzz passes). Seeds come from fuzz/seeds and the examples.
#
#   fuzz/run.sh                 # every target, 60 s each
#   fuzz/run.sh 600 phone cells # chosen targets, 10 minutes each
#
# Crashes land in fuzz/artifacts/<target>/; each target's last lines are
# printed. Record what a run found in fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(phone cells csv_reader xlsx_reader pages)
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/quanyu/fuzz-target}"
mkdir -p corpus
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  if [ -d "seeds/$t" ]; then cp -n seeds/$t/* "corpus/$t/" 2>/dev/null || true; fi
  case "$t" in
    csv_reader) cp -n ../examples/*.csv "corpus/$t/" 2>/dev/null || true ;;
    xlsx_reader) cp -n ../examples/*.xlsx "corpus/$t/" 2>/dev/null || true ;;
  esac
  echo "== $t (${secs}s)"
  if ! cargo fuzz run -s none --release "$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -max_len=262144 -timeout=10 >"run-$t.log" 2>&1; then
    grep -m1 -A2 "panicked at\|ERROR: libFuzzer" "run-$t.log" || true
    echo "   $t: FOUND A CRASH (input in fuzz/artifacts/$t/, log in fuzz/run-$t.log)"
  fi
  grep -E "^#[0-9]+ *DONE|Done [0-9]+ runs" "run-$t.log" | tail -n 1 || true
done
