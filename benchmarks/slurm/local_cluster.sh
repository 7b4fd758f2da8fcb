#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for `pytest -m cluster` and for trying
# `hydra/launcher=quantbench_slurm` without a cluster (docs/cluster.md). Needs root (CI is root).
#
#   bash benchmarks/slurm/local_cluster.sh start    # install if missing, configure, start, wait for an idle node
#   bash benchmarks/slurm/local_cluster.sh status   # the daemons and `sinfo`
#   bash benchmarks/slurm/local_cluster.sh stop     # stop every daemon it started; nothing left running
#
# `start` installs slurm-wlm and munge from the distribution's packages when missing (apt-get:
# minutes), writes /etc/slurm/slurm.conf for this machine (its cores and memory from `slurmd -C`, one
# partition, accounting off) and a munge key, then starts munged, slurmctld and slurmd. Starting
# twice is fine. State and logs: $QB_SLURM_STATE (default /var/tmp/quantbench-slurm).
set -euo pipefail

STATE="${QB_SLURM_STATE:-/var/tmp/quantbench-slurm}"
CONF=/etc/slurm/slurm.conf
MARK="# written by quantbench's benchmarks/slurm/local_cluster.sh"
PARTITION=debug
START_TIMEOUT_S=60
MUNGE_SOCKET_DIR=/run/munge

die() { echo "local_cluster.sh: $*" >&2; exit 1; }

installed() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sinfo >/dev/null && command -v munged >/dev/null; }

install() {
  installed && return
  ((EUID == 0)) || die "SLURM is not installed and installing needs root; run as root or: apt-get install slurm-wlm munge"
  command -v apt-get >/dev/null || die "SLURM is not installed and there is no apt-get here; install slurm-wlm and munge with this system's package manager"
  echo "installing slurm-wlm and munge (apt-get; a few minutes)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurm-wlm slurmctld slurmd slurm-client munge; } >"$STATE/apt-get.log" 2>&1; then
    die "apt-get could not install slurm-wlm and munge: $(grep -E '^(E|W):' "$STATE/apt-get.log" | head -1 || tail -1 "$STATE/apt-get.log") (full log: $STATE/apt-get.log)"
  fi
  installed || die "apt-get finished but slurmctld, slurmd, sinfo or munged is still missing (log: $STATE/apt-get.log)"
}

# This machine's node line: `slurmd -C` reports what slurmd itself will detect, so the node is not
# drained for having less than the configuration says. Memory 5% below the detected total: the
# kernel's own use varies a little between boots.
node_line() {
  local detected memory_mb
  detected=$(slurmd -C | head -1) || die "slurmd -C failed: cannot read this machine's cores and memory"
  memory_mb=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")
  sed "s/RealMemory=[0-9]*/RealMemory=$((memory_mb * 95 / 100))/" <<<"$detected"
}

write_config() {
  local node host
  node=$(node_line)
  host=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$node")
  if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; this machine already has a SLURM configuration: use it, or move it away first"
  fi
  mkdir -p "$(dirname "$CONF")" "$STATE/slurmctld" "$STATE/slurmd"
  cat >"$STATE/slurm.conf.new" <<EOF
$MARK
# One node, one partition, no accounting: a cluster for tests on one machine.
ClusterName=quantbench
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
# No cgroups: containers often lack a writable cgroup hierarchy. linuxproc follows each job's
# process tree through /proc, so a job's children (quantbench's isolated job processes, in their
# own sessions) are still signalled at a time limit or scancel; pgid would miss them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Several jobs share the node, one core each unless they ask for more; memory is not a consumable
# (a job without --mem would otherwise take the whole node).
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Finished jobs stay visible to scontrol for an hour: without accounting, the launcher reads why a
# job ended (TIMEOUT, CANCELLED, ...) from there.
MinJobAge=3600
# A time limit is enforced at once (no grace minute), and a job that ignores SIGTERM is killed 5 s later.
OverTimeLimit=0
KillWait=5
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MpiDefault=none
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  if cmp -s "$STATE/slurm.conf.new" "$CONF"; then
    rm "$STATE/slurm.conf.new"
    return
  fi
  mv "$STATE/slurm.conf.new" "$CONF"
  # Daemons of an earlier start read the new configuration now.
  if pgrep -x slurmctld >/dev/null; then scontrol reconfigure || die "scontrol reconfigure failed; see $STATE/slurmctld.log"; fi
}

start_munge() {
  if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  mkdir -p "$MUNGE_SOCKET_DIR" /var/lib/munge /var/log/munge
  chown munge:munge "$MUNGE_SOCKET_DIR" /var/lib/munge /var/log/munge
  chmod 0755 "$MUNGE_SOCKET_DIR"
  if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- munged --pid-file="$MUNGE_SOCKET_DIR/munged.pid" \
      || die "munged did not start; see /var/log/munge/munged.log"
  fi
  munge -n | unmunge >/dev/null 2>&1 || die "munge cannot encode and decode a credential; see /var/log/munge/munged.log"
}

start_daemon() {  # name
  local name=$1
  pgrep -x "$name" >/dev/null && return
  "$name" -f "$CONF" || die "$name did not start; see $STATE/$name.log"
}

wait_idle() {
  local deadline=$((SECONDS + START_TIMEOUT_S)) state=""
  while ((SECONDS < deadline)); do
    state=$(sinfo -h -p "$PARTITION" -o %T 2>/dev/null | head -1 || true)
    case "$state" in
      idle|mixed|allocated) echo "SLURM is up: partition $PARTITION, node $(sinfo -h -o '%N %c CPUs %m MB' | head -1), state $state"; return ;;
      drained*|down*|fail*)  # a node the controller marked down at start (a stale state): back to service
        scontrol update NodeName="$(sinfo -h -o %N | head -1)" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  die "the node is not idle after ${START_TIMEOUT_S}s (sinfo says '${state:-nothing}'); see $STATE/slurmctld.log and $STATE/slurmd.log"
}

start() {
  mkdir -p "$STATE"
  install
  write_config
  start_munge
  start_daemon slurmctld
  start_daemon slurmd
  wait_idle
}

daemons() {  # the SLURM and munge processes running here, one per line (pgrep matches 15 characters at most: one name each)
  local name
  for name in slurmctld slurmd slurmstepd munged; do pgrep -a -x "$name" || true; done
}

stop_pid_file() {  # pid file: TERM, then KILL after 10 s
  local pid_file=$1 pid waited=0
  [[ -s $pid_file ]] || return 0
  pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" || true
    while kill -0 "$pid" 2>/dev/null && ((waited < 10)); do sleep 1; waited=$((waited + 1)); done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" || true
  fi
  rm -f "$pid_file"
}

stop() {
  # Jobs first, so that no job's processes outlive the cluster (their slurmstepd ends with them);
  # then the daemons this script started, by their pid files.
  if [[ -s $STATE/slurmctld.pid ]] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null; then
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    local waited=0
    while pgrep -x slurmstepd >/dev/null && ((waited < 20)); do sleep 1; waited=$((waited + 1)); done
  fi
  stop_pid_file "$STATE/slurmd.pid"
  stop_pid_file "$STATE/slurmctld.pid"
  stop_pid_file "$MUNGE_SOCKET_DIR/munged.pid"
  local left
  left=$(daemons)
  [[ -z $left ]] || die "still running after stop: $left"
  echo "SLURM stopped: no slurmctld, slurmd, slurmstepd or munged left"
}

status() {
  [[ -n $(daemons) ]] && daemons || echo "no SLURM or munge daemon running"
  if pgrep -x slurmctld >/dev/null; then sinfo; squeue; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: bash benchmarks/slurm/local_cluster.sh start|stop|status" >&2; exit 2 ;;
esac
