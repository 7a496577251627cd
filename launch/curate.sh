#!/usr/bin/env bash
# Submit the curation pipeline as a chain of Slurm jobs (each waits for the previous one
# with afterok; a failure cancels the rest):
#   1 select               array: shard-parallel
#   2 sample label audit distill   one job (the labeller's concurrency does the fan-out)
#   3 filter clean         array
#   4 dedup                one job (MinHash LSH over every shard; dedup.storage=redis to share the index)
#   5 decontam mine        array
#   6 report               one job
#
#   launch/curate.sh [HYDRA_OVERRIDE ...]
#   launch/curate.sh inputs=[/data/finefineweb] output=/data/ecom label.backend=http label.model=...
#
# Environment: REXBERT_CURATE_PRESET (conf/curate/<preset>.yaml, default ecommerce),
# REXBERT_CURATE_TASKS (array size, default 16), REXBERT_PYTHON,
# REXBERT_SBATCH_ARGS (extra sbatch options for every job), SBATCH_PARTITION / SBATCH_ACCOUNT...
# Prints one line per job: "<stages> <job id>".
set -euo pipefail
cd "$(dirname "$0")/.."

tasks=${REXBERT_CURATE_TASKS:-16}
read -r -a sbatch_args <<<"${REXBERT_SBATCH_ARGS:-}"
previous=""
submit() {  # submit ARRAY(yes|no) STAGES: one job of the chain
  local array=$1 stages=$2 options=() job
  shift 2
  [[ $array == yes ]] && options+=(--array="0-$((tasks - 1))")
  [[ -n $previous ]] && options+=(--dependency="afterok:$previous")
  job=$(sbatch --parsable "${sbatch_args[@]}" "${options[@]}" --job-name="rexbert-curate-${stages//,/-}" \
    launch/curate_stage.sh "stages=[$stages]" "$@")
  previous=${job%%;*}
  echo "$stages $previous"
}
submit yes select "$@"
submit no sample,label,audit,distill "$@"
submit yes filter,clean "$@"
submit no dedup "$@"
submit yes decontam,mine "$@"
submit no report "$@"
