# shellcheck shell=bash
# Sourced by launch/phase*.sh inside a Slurm batch job: start one training rank per GPU with
# srun, forward the preemption signal, and requeue the job when the trainer asks for it.
#
# Environment (all optional; see docs/cluster.md):
#   REXBERT_HOME            the repository on the cluster (default: the directory sbatch ran in)
#   REXBERT_PYTHON          python with the project installed (default: python)
#   REXBERT_RUN_DIR         run directory (default: runs/<phase>; a trainer.run_dir= override wins)
#   REXBERT_MAX_REQUEUES    give up after this many requeues of one job (default 20)
#   REXBERT_CONTAINER_IMAGE pyxis/enroot image: srun --container-image (+ the repo mounted)
#   REXBERT_APPTAINER_IMAGE apptainer .sif: every rank runs `apptainer exec --nv IMAGE`
#   REXBERT_SRUN_ARGS       extra srun options (word-split), e.g. "--cpu-bind=none"

rexbert_log() { echo "[rexbert $(date +%FT%T)] $*"; }

# The run directory: the last trainer.run_dir= among the overrides (Hydra's rule), else
# REXBERT_RUN_DIR, else runs/<phase>. Fixed, never a timestamp: a requeued job must find it.
rexbert_run_dir() {
  local phase=$1 dir=${REXBERT_RUN_DIR:-runs/$1} arg
  shift
  for arg in "$@"; do
    [[ $arg == trainer.run_dir=* ]] && dir=${arg#trainer.run_dir=}
  done
  echo "$dir"
}

rexbert_launcher() {  # the command that starts the ranks, one srun task per GPU
  local log=$1
  LAUNCHER=(srun --kill-on-bad-exit=1 --output="$log")
  if [[ -n ${REXBERT_CONTAINER_IMAGE:-} ]]; then
    LAUNCHER+=(--container-image="$REXBERT_CONTAINER_IMAGE" --container-mounts="$PWD:$PWD" --container-workdir="$PWD")
  fi
  if [[ -n ${REXBERT_SRUN_ARGS:-} ]]; then
    local extra
    read -r -a extra <<<"$REXBERT_SRUN_ARGS"
    LAUNCHER+=("${extra[@]}")
  fi
  if [[ -n ${REXBERT_APPTAINER_IMAGE:-} ]]; then
    LAUNCHER+=(apptainer exec --nv --bind "$PWD" "$REXBERT_APPTAINER_IMAGE")
  fi
}

rexbert_run_phase() {
  local phase=$1
  shift
  : "${SLURM_JOB_ID:?launch/$phase.sh is a Slurm batch script: sbatch launch/$phase.sh [overrides]}"
  cd "${REXBERT_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}" || return 2
  [[ -f conf/phase/$phase.yaml ]] || { echo "no conf/phase/$phase.yaml in $PWD: set REXBERT_HOME to the repository" >&2; return 2; }

  local run_dir attempt log
  run_dir=$(rexbert_run_dir "$phase" "$@")
  attempt=${SLURM_RESTART_COUNT:-0}
  mkdir -p "$run_dir/logs"
  log=$run_dir/logs/$phase-$SLURM_JOB_ID-attempt$attempt.log  # each attempt's log apart
  MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
  export MASTER_ADDR
  export MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}
  rexbert_log "job $SLURM_JOB_ID attempt $attempt: $phase, $SLURM_NNODES node(s), $SLURM_NTASKS rank(s); run dir $run_dir; log $log"

  rm -f "$run_dir/REQUEUE"  # a marker from an earlier attempt must not requeue this one
  rexbert_launcher "$log"
  "${LAUNCHER[@]}" "${REXBERT_PYTHON:-python}" -m rexbert.train "phase=$phase" "trainer.run_dir=$run_dir" "$@" &
  local pid=$! rc=0
  # Bash runs a trap only between foreground commands, so training runs in the background
  # and the trap forwards the signal; srun passes it on to every rank.
  trap 'rexbert_log "USR1: asking the trainer to checkpoint and stop"; kill -USR1 "$pid" 2>/dev/null' USR1
  trap 'rexbert_log "TERM: asking the trainer to checkpoint and stop"; kill -TERM "$pid" 2>/dev/null' TERM
  while true; do
    wait "$pid" && rc=0 || rc=$?
    kill -0 "$pid" 2>/dev/null || break  # wait returned early for a trapped signal
  done
  trap - USR1 TERM

  if [[ -f $run_dir/REQUEUE ]]; then
    if ((attempt >= ${REXBERT_MAX_REQUEUES:-20})); then
      rexbert_log "checkpointed at step $(cat "$run_dir/REQUEUE"), but this job was already requeued $attempt times (REXBERT_MAX_REQUEUES); stopping"
      return 3
    fi
    rexbert_log "checkpointed at step $(cat "$run_dir/REQUEUE"); requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID"
    return 0
  fi
  rexbert_log "training exited with code $rc"
  return "$rc"
}
