#!/usr/bin/env bash
# Runs the test tiers in order (or the ones named), printing each tier's wall time and,
# last, one total line "total: N passed, N failed, N skipped" over all tiers.
# Usage: scripts/run_tests.sh PYTHON [tier ...]
set -uo pipefail
python=${1:?usage: run_tests.sh PYTHON [tier ...]}; shift
tiers=("$@"); [ ${#tiers[@]} -eq 0 ] && tiers=(unit distributed integration gpu)
status=0 passed=0 failed=0 skipped=0
declare -A took
log=$(mktemp); trap 'rm -f "$log"' EXIT
for tier in "${tiers[@]}"; do
  start=$(date +%s)
  echo "=== tier: $tier ==="
  "$python" -m pytest -q -rs "tests/$tier" 2>&1 | tee "$log"  # -rs: print why a test was skipped
  rc=${PIPESTATUS[0]}
  # 5 = no tests collected (e.g. a tier with nothing yet): not a failure of the tier.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=1; fi
  summary=$(grep -E "[0-9]+ (passed|failed|skipped|errors?)" "$log" | tail -1)
  for kind in passed failed skipped error; do
    n=$(grep -oE "[0-9]+ $kind" <<<"$summary" | head -1 | cut -d' ' -f1)
    case $kind in
      passed) passed=$(( passed + ${n:-0} )) ;;
      skipped) skipped=$(( skipped + ${n:-0} )) ;;
      *) failed=$(( failed + ${n:-0} )) ;;
    esac
  done
  took[$tier]=$(( $(date +%s) - start ))
  echo "=== tier $tier: rc=$rc, ${took[$tier]} s ==="
done
echo "=== tier times ==="
for tier in "${tiers[@]}"; do printf '%-12s %5s s\n' "$tier" "${took[$tier]}"; done
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi  # a tier crashed without a summary
echo "total: $passed passed, $failed failed, $skipped skipped"
exit $status
