#!/usr/bin/env bash
# Submit the whole curriculum: phase 1 -> phase 2 -> phase 3 as three Slurm jobs chained with
# --dependency=afterok (a failed phase cancels the ones after it), each phase starting from
# the previous phase's run directory (its newest complete checkpoint).
#
#   launch/curriculum.sh [OVERRIDE...]
#
# An override applies to every phase; prefix it with the phase to aim it at one:
#   launch/curriculum.sh model=base data=ecom phase1:trainer.max_steps=50000 phase3:trainer.max_steps=5000
# Environment:
#   REXBERT_RUN_ROOT     where the phases' run directories go (default runs/curriculum)
#   REXBERT_SBATCH_ARGS  extra sbatch options for every phase (word-split),
#                        e.g. "--nodes=4 --qos=high"; SBATCH_* variables work too
# Prints one line per phase: "<phase> <job id> <run dir>".
set -euo pipefail
cd "$(dirname "$0")/.."

root=${REXBERT_RUN_ROOT:-runs/curriculum}
read -r -a sbatch_args <<<"${REXBERT_SBATCH_ARGS:-}"
previous_job="" previous_dir=""
for phase in phase1 phase2 phase3; do
  overrides=("trainer.run_dir=$root/$phase")
  [[ -n $previous_dir ]] && overrides+=("trainer.load=$previous_dir")
  for arg in "$@"; do
    case $arg in
      phase[123]:*) [[ ${arg%%:*} == "$phase" ]] && overrides+=("${arg#*:}") ;;
      *) overrides+=("$arg") ;;
    esac
  done
  dependency=()
  [[ -n $previous_job ]] && dependency=(--dependency="afterok:$previous_job" --kill-on-invalid-dep=yes)
  job=$(sbatch --parsable "${sbatch_args[@]}" "${dependency[@]}" "launch/$phase.sh" "${overrides[@]}")
  job=${job%%;*}  # "id;cluster" on federated clusters
  echo "$phase $job $root/$phase"
  previous_job=$job previous_dir=$root/$phase
done
