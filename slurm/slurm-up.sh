#!/usr/bin/env bash
# slurm-up.sh - bring up a one-node Slurm cluster on this machine (Debian 12, root).
#
# Installs the missing Debian packages, writes /etc/slurm/slurm.conf (marked as ours),
# starts munged, slurmctld and slurmd (each only if not already running) and waits for
# the node "localhost" to be idle.  Running it again with the same settings is a quick
# no-op.  See slurm/README.md for the env knobs and the paths other code may rely on.
#
# Env knobs:
#   SLURM_CPUS            CPUs of the node            (default: nproc)
#   SLURM_MEM_MB          RealMemory of the node, MB  (default: 80% of MemTotal)
#   SLURM_MAX_ARRAY_SIZE  MaxArraySize                (default: 1001 = Slurm's default)
#   SLURM_FORCE_CONF=1    overwrite a slurm.conf that was not written by this script
#
# Changing a knob while the cluster is up: the conf is rewritten and
#   - if only MaxArraySize changed: `scontrol reconfigure` (jobs may be active);
#   - otherwise: the daemons are restarted (state kept), refused while jobs are active.
set -euo pipefail
umask 022

PROG=slurm-up
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- fixed paths (the interface; slurm-down.sh uses the same ones) --------------------
CONF=/etc/slurm/slurm.conf
MARKER='# thresher-slurm: managed by slurm/slurm-up.sh (delete this line to stop it rewriting the file)'
RUN_DIR=/run/slurm-thresher                 # pid files, lock, copy of the conf the daemons run
LOG_DIR=/var/log/slurm-thresher             # daemon logs + jobcomp.log
STATE_DIR=/var/spool/slurm-thresher         # ctld/ (StateSaveLocation), d/ (SlurmdSpoolDir)
CTLD_PID=$RUN_DIR/slurmctld.pid
SLURMD_PID=$RUN_DIR/slurmd.pid
RUNNING_CONF=$RUN_DIR/slurm.conf.running
MUNGE_OURS=$RUN_DIR/munged.started-by-us
MUNGE_PID=/run/munge/munged.pid
MUNGE_LOG=/var/log/munge/munged.log
PACKAGES=(munge slurmctld slurmd slurm-client)
ACTIVE_STATES=PD,R,CG,CF,S,SI,RQ,RH,RS,SO,ST   # every job state that is not final

T0=$(date +%s.%N)
info() { echo "$PROG: $*"; }
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}'; }

tail_logs() {
  local f
  for f in "$LOG_DIR"/slurmctld.out "$LOG_DIR"/slurmctld.log "$LOG_DIR"/slurmd.out \
           "$LOG_DIR"/slurmd.log "$LOG_DIR"/munged.out "$MUNGE_LOG"; do
    [[ -s $f ]] || continue
    echo "----- tail -n 15 $f" >&2
    tail -n 15 "$f" >&2 || true
  done
}
die() {
  echo "$PROG: ERROR: $*" >&2
  [[ ${NO_LOG_TAIL:-0} == 1 ]] || tail_logs
  exit 1
}

# proc_state PID -> sets P_COMM and P_STATE from /proc/PID/stat; fails if PID is gone.
proc_state() {
  local stat
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  P_COMM=${stat#*(}; P_COMM=${P_COMM%)*}
  P_STATE=${stat##*) }; P_STATE=${P_STATE%% *}
}
# live_pid PIDFILE COMM -> prints the pid if the file names a live (not zombie) COMM process.
live_pid() {
  local pid
  [[ -r $1 ]] || return 1
  pid=$(tr -dc '0-9' <"$1")
  proc_state "$pid" || return 1
  [[ $P_COMM == "$2" && $P_STATE != Z && $P_STATE != X ]] || return 1
  echo "$pid"
}
# procs_named COMM -> pids of live (not zombie) processes with that comm.
procs_named() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    proc_state "$pid" || continue
    [[ $P_COMM == "$1" && $P_STATE != Z && $P_STATE != X ]] && echo "$pid"
  done
  return 0
}
is_int() { [[ $1 =~ ^[0-9]+$ ]] && (( 10#$1 >= 1 )); }

[[ $(id -u) == 0 ]] || NO_LOG_TAIL=1 die "must run as root (it installs packages and starts daemons)"

# ---- serialise concurrent up/down runs ----------------------------------------------
mkdir -p "$RUN_DIR" "$LOG_DIR"
if [[ -z ${SLURM_THRESHER_LOCKED:-} ]]; then
  exec 9>"$RUN_DIR/lock"
  flock -w 120 9 || NO_LOG_TAIL=1 die "another slurm-up/slurm-down holds $RUN_DIR/lock"
  export SLURM_THRESHER_LOCKED=1
fi

# ---- 1. packages ----------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ $st == installed ]] || missing+=("$p")
done
if (( ${#missing[@]} )); then
  info "installing ${missing[*]} (log: $LOG_DIR/install.log)"
  # No init system here: make sure postinst scripts do not start the daemons themselves.
  added_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  rc=0
  {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"
  } </dev/null >>"$LOG_DIR/install.log" 2>&1 9>&- || rc=$?
  (( added_policy )) && rm -f /usr/sbin/policy-rc.d
  if (( rc )); then
    tail -n 20 "$LOG_DIR/install.log" >&2
    NO_LOG_TAIL=1 die "apt-get failed (exit $rc) installing ${missing[*]}"
  fi
  info "packages installed ($(elapsed) s)"
fi
for b in munged munge unmunge slurmctld slurmd sinfo scontrol squeue sbatch scancel; do
  command -v "$b" >/dev/null || NO_LOG_TAIL=1 die "$b not found after install"
done

# ---- 2. the desired slurm.conf ---------------------------------------------------------
CPUS=${SLURM_CPUS:-$(nproc)}
if [[ -n ${SLURM_MEM_MB:-} ]]; then MEM=$SLURM_MEM_MB
else MEM=$(awk '/^MemTotal:/{printf "%d", $2*0.8/1024}' /proc/meminfo); fi
MAXARR=${SLURM_MAX_ARRAY_SIZE:-1001}
is_int "$CPUS"   || NO_LOG_TAIL=1 die "SLURM_CPUS must be a positive integer (got '$CPUS')"
is_int "$MEM"    || NO_LOG_TAIL=1 die "SLURM_MEM_MB must be a positive integer (got '$MEM')"
is_int "$MAXARR" && (( 10#$MAXARR <= 4000001 )) \
  || NO_LOG_TAIL=1 die "SLURM_MAX_ARRAY_SIZE must be an integer in 1..4000001 (got '$MAXARR')"
CPUS=$((10#$CPUS)); MEM=$((10#$MEM)); MAXARR=$((10#$MAXARR))

render_conf() {
  cat <<EOF
$MARKER
# One-node cluster for thresher tests/CI. SLURM_CPUS=$CPUS SLURM_MEM_MB=$MEM SLURM_MAX_ARRAY_SIZE=$MAXARR
ClusterName=thresher
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
MaxArraySize=$MAXARR
MailProg=/bin/true
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/d
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}
DESIRED=$(render_conf)

write_conf() {
  local tmp
  mkdir -p "$(dirname "$CONF")"
  tmp=$(mktemp "$(dirname "$CONF")/.slurm.conf.XXXXXX")
  printf '%s\n' "$DESIRED" >"$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$CONF"
}

if [[ -e $CONF ]] && ! grep -qxF "$MARKER" "$CONF"; then
  [[ ${SLURM_FORCE_CONF:-0} == 1 ]] || NO_LOG_TAIL=1 die "$CONF exists and was not written by slurm-up.sh; not overwriting it (move it away, or set SLURM_FORCE_CONF=1)"
  info "SLURM_FORCE_CONF=1: overwriting foreign $CONF (old copy: $CONF.before-thresher)"
  cp -p "$CONF" "$CONF.before-thresher"
fi

# ---- 3. what is running? ---------------------------------------------------------------
ctld=$(live_pid "$CTLD_PID" slurmctld || true)
slurmd=$(live_pid "$SLURMD_PID" slurmd || true)

# Slurm daemons that are not ours (other pid files, other conf): never touch them.
foreign=()
for c in slurmctld slurmd; do
  for pid in $(procs_named "$c"); do
    [[ $pid == "$ctld" || $pid == "$slurmd" ]] || foreign+=("$pid($c)")
  done
done
(( ${#foreign[@]} == 0 )) || NO_LOG_TAIL=1 die "Slurm daemons not started by slurm-up.sh are running: ${foreign[*]}; they use another configuration. Stop them first."

if [[ -n $ctld || -n $slurmd ]]; then
  [[ -r $RUNNING_CONF ]] || NO_LOG_TAIL=1 die "slurmctld/slurmd are running but with an unknown configuration ($RUNNING_CONF missing); run slurm/slurm-down.sh first"
  if [[ $(cat "$RUNNING_CONF") != "$DESIRED" ]]; then
    # Lines other than comments and MaxArraySize need a daemon restart.
    strip() { grep -v -e '^#' -e '^MaxArraySize=' || true; }
    if [[ -n $ctld && -n $slurmd && "$(strip <"$RUNNING_CONF")" == "$(printf '%s\n' "$DESIRED" | strip)" ]]; then
      # Only MaxArraySize changed.  `scontrol reconfigure` alone is NOT enough on 22.05:
      # slurmctld caches MaxArraySize on first use, so restart slurmctld (jobs survive
      # that), then reconfigure so slurmd re-reads the same file.
      info "MaxArraySize changed to $MAXARR: rewriting $CONF and restarting slurmctld (state and jobs kept)"
      write_conf
      kill -TERM "$ctld" 2>/dev/null || true
      for _ in $(seq 200); do live_pid "$CTLD_PID" slurmctld >/dev/null || break; sleep 0.1; done
      live_pid "$CTLD_PID" slurmctld >/dev/null && die "slurmctld (pid $ctld) did not stop within 20 s"
      ctld=
      RECONF_SLURMD=1
    else
      active=0
      if [[ -n $ctld ]]; then
        q=$(squeue -h -t "$ACTIVE_STATES" -o %i 2>&1) || die "squeue failed: $q"
        active=$(grep -c . <<<"$q" || true)
      fi
      if (( active > 0 )); then
        NO_LOG_TAIL=1 die "the requested configuration (CPUs/memory) differs from the running one and $active job(s) are active; wait for them or run slurm/slurm-down.sh first"
      fi
      info "configuration changed: restarting the Slurm daemons (state kept)"
      KEEP_STATE=1 bash "$HERE/slurm-down.sh" </dev/null || die "could not stop the daemons for the restart"
      ctld=; slurmd=
    fi
  fi
fi
if [[ ! -e $CONF ]] || [[ $(cat "$CONF") != "$DESIRED" ]]; then
  write_conf
fi

# ---- 4. munged -------------------------------------------------------------------------
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! live_pid "$MUNGE_PID" munged >/dev/null; then
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
  install -d -o munge -g munge -m 0700 /etc/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    info "creating /etc/munge/munge.key"
    mungekey --create --keyfile=/etc/munge/munge.key >/dev/null 2>&1 \
      || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  fi
  runuser -u munge -- munged </dev/null >>"$LOG_DIR/munged.out" 2>&1 9>&- \
    || die "munged failed to start"
  touch "$MUNGE_OURS"
  info "started munged"
fi
for _ in $(seq 100); do munge_ok && break; sleep 0.1; done
munge_ok || die "munge does not work (munge -n | unmunge fails)"

# ---- 5. slurmctld and slurmd -----------------------------------------------------------
mkdir -p "$STATE_DIR/ctld" "$STATE_DIR/d"
chmod 0700 "$STATE_DIR/ctld"
if [[ -z $ctld && -z $slurmd && ! -e $STATE_DIR/ctld/job_state ]]; then
  # Fresh cluster (job ids restart at 1): keep the previous run's logs as *.1.
  for f in slurmctld.log slurmctld.out slurmd.log slurmd.out jobcomp.log; do
    [[ -e $LOG_DIR/$f ]] && mv -f "$LOG_DIR/$f" "$LOG_DIR/$f.1"
  done
fi

wait_pid() {  # wait_pid PIDFILE COMM SECONDS
  local i
  for (( i = 0; i < $3 * 10; i++ )); do
    live_pid "$1" "$2" >/dev/null && return 0
    sleep 0.1
  done
  return 1
}

started=0
if [[ -z $ctld ]]; then
  rm -f "$CTLD_PID"
  slurmctld -i </dev/null >>"$LOG_DIR/slurmctld.out" 2>&1 9>&- || die "slurmctld -i exited with status $?"
  wait_pid "$CTLD_PID" slurmctld 15 || die "slurmctld did not stay up"
  printf '%s\n' "$DESIRED" >"$RUNNING_CONF"
  started=1
  info "started slurmctld (pid $(cat "$CTLD_PID"))"
fi
for _ in $(seq 150); do
  scontrol ping 2>/dev/null | grep -q 'is UP' && break
  live_pid "$CTLD_PID" slurmctld >/dev/null || die "slurmctld died"
  sleep 0.1
done
scontrol ping 2>/dev/null | grep -q 'is UP' || die "slurmctld does not answer scontrol ping"

if [[ ${RECONF_SLURMD:-0} == 1 ]]; then
  scontrol reconfigure </dev/null >/dev/null 2>"$RUN_DIR/reconf.err" \
    || die "scontrol reconfigure failed: $(cat "$RUN_DIR/reconf.err")"
fi
got=$(scontrol show config 2>/dev/null | awk '$1=="MaxArraySize"{print $3}')
[[ $got == "$MAXARR" ]] || die "slurmctld reports MaxArraySize=$got, wanted $MAXARR"

if [[ -z $slurmd ]]; then
  rm -f "$SLURMD_PID"
  slurmd -N localhost </dev/null >>"$LOG_DIR/slurmd.out" 2>&1 9>&- || die "slurmd -N localhost exited with status $?"
  wait_pid "$SLURMD_PID" slurmd 15 || die "slurmd did not stay up"
  printf '%s\n' "$DESIRED" >"$RUNNING_CONF"
  started=1
  info "started slurmd (pid $(cat "$SLURMD_PID"))"
fi

# ---- 6. wait for the node ------------------------------------------------------------
deadline=$(( $(date +%s) + 30 ))
while :; do
  line=$(scontrol -o show node localhost 2>/dev/null || true)
  state=$(sed -n 's/.* State=\([^ ]*\).*/\1/p' <<<"$line")
  case $state in
    *INVAL*|*DRAIN*|*FAIL*)
      die "node localhost is $state: ${line##* Reason=}" ;;
  esac
  base=${state%%+*}
  if [[ $base =~ ^(IDLE|MIXED|ALLOCATED|COMPLETING)$ && $state != *NOT_RESPONDING* && $state != *DOWN* ]]; then
    break
  fi
  live_pid "$CTLD_PID" slurmctld >/dev/null || die "slurmctld died while waiting for the node"
  live_pid "$SLURMD_PID" slurmd >/dev/null || die "slurmd died while waiting for the node"
  (( $(date +%s) < deadline )) || die "node localhost not idle after 30 s (state '${state:-?}'): $line"
  sleep 0.1
done

if (( started )); then
  info "up in $(elapsed) s: node localhost $state, CPUs=$CPUS RealMemory=${MEM}MB MaxArraySize=$MAXARR; logs in $LOG_DIR"
else
  info "already up (node localhost $state), nothing to do ($(elapsed) s)"
fi
