#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the integration tests of launch/.
#   scripts/slurm_local_cluster.sh up     install (Debian packages, root) and start munge,
#                                         slurmctld and slurmd; waits for the node to be idle
#   scripts/slurm_local_cluster.sh down   stop them by pid file and forget every job
# Environment: SLURM_LOCAL_CPUS (CPUs to advertise, default 16: more than nproc is fine, so
# `--cpus-per-task` headers fit), SLURM_LOCAL_GPUS (fake gres/gpu, default 8, so the
# scripts' `--gpus-per-node` headers schedule unchanged on a machine without GPUs).
# No systemd and no cgroups: proctrack/linuxproc, task/none. Short credential expiry and
# scheduler intervals make a requeued job start again in seconds, not minutes.
set -euo pipefail

CPUS=${SLURM_LOCAL_CPUS:-16}
GPUS=${SLURM_LOCAL_GPUS:-8}
LOG=/var/log/slurm
PACKAGES=(slurmctld slurmd slurm-client munge)

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

retry() {  # retry N CMD...: up to N tries 0.2 s apart
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  "$@"
}

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    echo "[slurm-local] installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

start_munge() {
  [[ -s /etc/munge/munge.key ]] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 755 /run/munge
  alive /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
  retry 50 sh -c 'munge -n </dev/null | unmunge'
}

write_config() {
  local mem_mb gres_type="" gres_node=""
  mem_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024))
  install -d /var/spool/slurmctld /var/spool/slurmd "$LOG" /run/slurm
  rm -f /etc/slurm/gres.conf
  if ((GPUS > 0)); then
    # gres/gpu needs a device file per GPU; links to /dev/null satisfy slurmd
    install -d /run/slurm/fakegpu
    for i in $(seq 0 $((GPUS - 1))); do ln -sfn /dev/null "/run/slurm/fakegpu/nvidia$i"; done
    echo "NodeName=localhost Name=gpu File=/run/slurm/fakegpu/nvidia[0-$((GPUS - 1))]" >/etc/slurm/gres.conf
    gres_type="GresTypes=gpu"
    gres_node="Gres=gpu:$GPUS"
  fi
  cat >/etc/slurm/slurm.conf <<CONF
ClusterName=rexbert-ci
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=5
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.log
$gres_type
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
DependencyParameters=kill_invalid_depend
ReturnToService=2
SlurmdParameters=config_overrides
MailProg=/bin/true
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
KillWait=10
MinJobAge=600
InactiveLimit=0
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem_mb $gres_node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
}

node_idle() { [[ $(sinfo -h -N -o %T | head -1) == idle ]]; }

up() {
  [[ $(id -u) == 0 ]] || { echo "[slurm-local] needs root (Debian packages, daemons)" >&2; exit 2; }
  command -v apt-get >/dev/null || [[ -x /usr/sbin/slurmctld ]] || { echo "[slurm-local] needs Debian/apt" >&2; exit 2; }
  install_packages
  start_munge
  write_config
  alive /run/slurm/slurmctld.pid || slurmctld -c  # -c: start without any saved job state
  alive /run/slurm/slurmd.pid || slurmd -N localhost
  if ! retry 150 node_idle; then
    tail -n 30 "$LOG/slurmctld.log" "$LOG/slurmd.log" >&2
    exit 1
  fi
  sinfo -N -o '%N %T %c %m %G'
}

down() {
  if alive /run/slurm/slurmctld.pid; then
    scancel --user="$(id -un)" 2>/dev/null || true
    scontrol shutdown 2>/dev/null || true  # stops slurmctld and slurmd
  fi
  local pid
  for pf in /run/slurm/slurmctld.pid /run/slurm/slurmd.pid /run/munge/munged.pid; do
    alive "$pf" || continue
    pid=$(cat "$pf")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
