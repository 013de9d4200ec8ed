#!/usr/bin/env bash
# slurm-down.sh - stop the one-node Slurm cluster started by slurm/slurm-up.sh.
#
# Cancels all jobs while the daemons are still up (so no slurmstepd is left behind),
# SIGTERMs slurmd, slurmctld and munged (munged only if slurm-up.sh started it), each by
# its pid file after checking the process name, waits up to 20 s, then SIGKILLs (and exits
# 1).  Wipes the Slurm state (spool) so the next slurm-up.sh starts at job id 1, unless
# KEEP_STATE=1.  Logs are left in place (slurm-up.sh rotates them to *.1 on a fresh start).
# A no-op when Slurm is not up.  Daemons it did not start (other pid files) are not touched.
set -euo pipefail

PROG=slurm-down
RUN_DIR=/run/slurm-thresher
LOG_DIR=/var/log/slurm-thresher
STATE_DIR=/var/spool/slurm-thresher
CTLD_PID=$RUN_DIR/slurmctld.pid
SLURMD_PID=$RUN_DIR/slurmd.pid
RUNNING_CONF=$RUN_DIR/slurm.conf.running
MUNGE_OURS=$RUN_DIR/munged.started-by-us
MUNGE_PID=/run/munge/munged.pid

T0=$(date +%s.%N)
info() { echo "$PROG: $*"; }
warn() { echo "$PROG: WARNING: $*" >&2; }
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}'; }

proc_state() {
  local stat
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  P_COMM=${stat#*(}; P_COMM=${P_COMM%)*}
  P_STATE=${stat##*) }; P_STATE=${P_STATE%% *}
}
# Zombies count as dead: PID 1 on these machines reaps exited daemons late.
alive() { proc_state "$1" && [[ $P_COMM == "$2" && $P_STATE != Z && $P_STATE != X ]]; }
live_pid() {
  local pid
  [[ -r $1 ]] || return 1
  pid=$(tr -dc '0-9' <"$1")
  alive "$pid" "$2" || return 1
  echo "$pid"
}
procs_named() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    alive "$pid" "$1" && echo "$pid"
  done
  return 0
}

if [[ $(id -u) != 0 ]]; then echo "$PROG: ERROR: must run as root" >&2; exit 1; fi
if [[ -d $RUN_DIR && -z ${SLURM_THRESHER_LOCKED:-} ]]; then
  exec 9>"$RUN_DIR/lock"
  flock -w 120 9 || { echo "$PROG: ERROR: another slurm-up/slurm-down holds $RUN_DIR/lock" >&2; exit 1; }
fi

ctld=$(live_pid "$CTLD_PID" slurmctld || true)
slurmd=$(live_pid "$SLURMD_PID" slurmd || true)
munged=
[[ -e $MUNGE_OURS ]] && munged=$(live_pid "$MUNGE_PID" munged || true)

rc=0
if [[ -z $ctld && -z $slurmd && -z $munged ]]; then
  info "Slurm is not running (nothing to stop)"
else
  # 1. cancel every job while slurmctld and slurmd still run, and wait for the steps to end.
  if [[ -n $ctld ]]; then
    jobs=$(squeue -h -t PD,R,CG,CF,S,SI,RQ,RH,RS,SO,ST -o %F 2>/dev/null | sort -u | tr '\n' ' ' || true)
    if [[ -n ${jobs// } ]]; then
      info "cancelling jobs: $jobs"
      # shellcheck disable=SC2086
      scancel $jobs </dev/null 2>/dev/null || warn "scancel $jobs failed"
      for _ in $(seq 100); do
        [[ -z $(squeue -h -t R,CG,CF,SI -o %i 2>/dev/null) && -z $(procs_named slurmstepd) ]] && break
        sleep 0.1
      done
    fi
  fi
  # 2. SIGTERM by pid file, then wait up to 20 s, then SIGKILL.
  declare -A name=()
  [[ -n $slurmd ]] && name[$slurmd]=slurmd
  [[ -n $ctld ]] && name[$ctld]=slurmctld
  [[ -n $munged ]] && name[$munged]=munged
  for pid in "${!name[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for (( i = 0; i < 200; i++ )); do
    left=()
    for pid in "${!name[@]}"; do alive "$pid" "${name[$pid]}" && left+=("$pid"); done
    (( ${#left[@]} )) || break
    sleep 0.1
  done
  if (( ${#left[@]} )); then
    for pid in "${left[@]}"; do
      warn "${name[$pid]} (pid $pid) ignored SIGTERM for 20 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    done
    sleep 0.5
    rc=1
  fi
  rm -f "$CTLD_PID" "$SLURMD_PID" "$RUNNING_CONF"
  [[ -n $munged ]] && rm -f "$MUNGE_OURS"
  info "stopped ${name[*]} in $(elapsed) s"
fi

# 3. anything left over?
steps=$(procs_named slurmstepd | tr '\n' ' ')
[[ -z ${steps// } ]] || warn "leftover slurmstepd processes: $steps(kill them with: kill -9 $steps)"
others=$(for c in slurmctld slurmd slurmscriptd; do procs_named "$c"; done | tr '\n' ' ')
[[ -z ${others// } ]] || warn "Slurm daemons still running (not ours or not stopped): $others"

# 4. state
if [[ ${KEEP_STATE:-0} == 1 ]]; then
  [[ -d $STATE_DIR ]] && info "KEEP_STATE=1: keeping $STATE_DIR"
elif [[ -z ${others// } ]] && [[ -e $STATE_DIR/ctld || -e $STATE_DIR/d ]]; then
  rm -rf "${STATE_DIR:?}"/ctld "${STATE_DIR:?}"/d
  info "wiped $STATE_DIR (next slurm-up starts at job id 1)"
fi
exit "$rc"
