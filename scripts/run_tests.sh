#!/usr/bin/env bash
# Runs the test tiers in order (or the ones named), printing each tier's wall time.
# Usage: scripts/run_tests.sh PYTHON [tier ...]
set -uo pipefail
python=${1:?usage: run_tests.sh PYTHON [tier ...]}; shift
tiers=("$@"); [ ${#tiers[@]} -eq 0 ] && tiers=(unit distributed integration gpu)
status=0
declare -A took
for tier in "${tiers[@]}"; do
  start=$(date +%s)
  echo "=== tier: $tier ==="
  "$python" -m pytest -q "tests/$tier"
  rc=$?
  # 5 = no tests collected (e.g. a tier with nothing yet): not a failure of the tier.
  if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then status=1; fi
  took[$tier]=$(( $(date +%s) - start ))
  echo "=== tier $tier: rc=$rc, ${took[$tier]} s ==="
done
echo "=== tier times ==="
for tier in "${tiers[@]}"; do printf '%-12s %5s s\n' "$tier" "${took[$tier]}"; done
exit $status
