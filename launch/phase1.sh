#!/usr/bin/env bash
# Curriculum phase1: general pretraining at 512 tokens, 30% span masking (conf/phase/phase1.yaml).
# Submit from the repository root; Hydra overrides pass through:
#   sbatch launch/phase1.sh model=base data=ecom trainer.max_steps=100000
# Cluster settings come from the environment or sbatch's command line, never by editing
# this file: SBATCH_PARTITION, SBATCH_ACCOUNT, SBATCH_TIMELIMIT, SBATCH_GPUS_PER_NODE,
# `sbatch --nodes=4 --ntasks-per-node=8 ...` (one rank per GPU). See docs/cluster.md.
#SBATCH --job-name=rexbert-phase1
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@600
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --kill-on-invalid-dep=yes
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
# shellcheck source=launch/common.sh
source "${REXBERT_HOME:-${SLURM_SUBMIT_DIR:-.}}/launch/common.sh"
rexbert_run_phase phase1 "$@"
