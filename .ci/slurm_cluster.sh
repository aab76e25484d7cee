#!/usr/bin/env bash
# A real one-node SLURM cluster on localhost for tests/test_slurm_cluster.py: Debian's
# slurm-wlm and munge, with every file (config, key, state, spool, logs, sockets) in one
# folder, so it runs next to nothing else and leaves nothing behind.
#
#   .ci/slurm_cluster.sh install        # apt-get the packages when a command is missing
#   .ci/slurm_cluster.sh start DIR      # munged + slurmctld + slurmd; waits for an idle node
#   .ci/slurm_cluster.sh stop DIR       # stops the three daemons by their PID files
#
# After `start`, point the client commands at the cluster with SLURM_CONF=DIR/slurm.conf.
# Ports: SLURMCTLD_PORT / SLURMD_PORT (default 6817 / 6818, SLURM's own).
# SLURM_CRED_EXPIRE (default 120, SLURM's own): seconds a job credential lives. A requeued
# job may not start again before its old credentials expire (slurmctld sets its BeginTime
# that far ahead; starting it earlier with `scontrol update StartTime=now` makes the job
# fail with "Job credential revoked"), so tests shorten it.
# The daemons run as root in a container: no cgroups, so processes are tracked by
# /proc (proctrack/linuxproc) and tasks are not bound (task/none).
set -euo pipefail

die() { echo "slurm_cluster.sh: $*" >&2; exit 1; }

install() {
  local missing=()
  for c in munged slurmctld slurmd sbatch; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  (( ${#missing[@]} == 0 )) && return 0
  local sudo=()
  if (( EUID != 0 )); then
    command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}; installing slurm-wlm and munge needs root or sudo"
    sudo=(sudo -n)
  fi
  echo "slurm_cluster.sh: installing slurm-wlm and munge (missing: ${missing[*]})" >&2
  # No `set -e` exit in the middle: say what failed and why it matters.
  if ! "${sudo[@]}" apt-get update -qq >&2 \
    || ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
      slurm-wlm munge >&2; then
    die "apt-get could not install slurm-wlm and munge (no network or no Debian archive?); the SLURM cluster tests need them"
  fi
}

start() {
  local dir=$1
  install
  mkdir -p "$dir"/{munge,state,spool,log}
  dir=$(cd "$dir" && pwd)
  chmod 700 "$dir/munge"

  # munge: its own key and socket, so a system munged (if any) is not involved.
  head -c 1024 /dev/urandom > "$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" \
    || die "munged did not start: $(tail -n 5 "$dir/log/munged.log" 2>/dev/null)"

  # The node as slurmd sees it (CPUs, sockets, cores, memory).
  local node
  node=$(slurmd -C | head -1 | sed -e 's/^NodeName=[^ ]*//')
  cat > "$dir/slurm.conf" <<EOF
ClusterName=deepcrl
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=${SLURM_CRED_EXPIRE:-120}
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# A node that went down comes back by itself once slurmd registers again.
ReturnToService=2
JobRequeue=1
# Finished jobs stay visible to scontrol for 10 minutes (the tests read their state).
MinJobAge=600
# The tests' jobs mostly wait (compiling, or held after a requeue): up to 4 of them share a core.
NodeName=localhost$node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -f "$SLURM_CONF" || die "slurmctld did not start: $(tail -n 5 "$dir/log/slurmctld.log" 2>/dev/null)"
  slurmd -f "$SLURM_CONF" -N localhost || die "slurmd did not start: $(tail -n 5 "$dir/log/slurmd.log" 2>/dev/null)"

  local state=""
  for _ in $(seq 120); do
    state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
    [[ "$state" == idle ]] && { echo "slurm_cluster.sh: node idle, SLURM_CONF=$SLURM_CONF" >&2; return 0; }
    sleep 0.5
  done
  die "the node is not idle after 60 s (state '${state}'); logs in $dir/log: $(tail -n 5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" 2>/dev/null)"
}

# PIDs of the processes under PID $1 (children first), from /proc (no procps needed).
descendants() {
  local stat line fields
  for stat in /proc/[0-9]*/stat; do
    line=$(cat "$stat" 2>/dev/null) || continue
    read -r -a fields <<< "${line##*) }"  # after the command name, which may hold spaces
    if [[ "${fields[1]}" == "$1" ]]; then
      stat=${stat#/proc/}
      descendants "${stat%/stat}"
      echo "${stat%/stat}"
    fi
  done
}

stop() {
  local dir pidfile pid jobs
  dir=$(cd "$1" && pwd) || return 0
  # Jobs first, while slurmctld and slurmd can still end them: slurmd leaves running
  # steps alone when it stops.
  if [[ -f "$dir/slurm.conf" ]] && [[ -s "$dir/slurmctld.pid" ]] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
    export SLURM_CONF=$dir/slurm.conf
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    if [[ -n "$jobs" ]]; then
      # shellcheck disable=SC2086  # one job id a word
      scancel $jobs 2>/dev/null || true
      for _ in $(seq 60); do
        [[ -z "$(squeue -h -o %A 2>/dev/null)" ]] && break
        sleep 0.5
      done
    fi
  fi
  # Steps that outlived that (slurmstepd holds a socket in this cluster's spool folder):
  # their processes, then themselves.
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == slurmstepd ]] || continue
    if ls -l "/proc/$pid/fd" 2>/dev/null | grep -q "$dir/"; then
      # shellcheck disable=SC2046
      kill -KILL $(descendants "$pid") "$pid" 2>/dev/null || true
    fi
  done
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    [[ -s "$pidfile" ]] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  done
  return 0
}

case "${1:-}" in
  install) install ;;
  start) [[ -n "${2:-}" ]] || die "usage: $0 start DIR"; start "$2" ;;
  stop) [[ -n "${2:-}" ]] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 install | start DIR | stop DIR" ;;
esac
