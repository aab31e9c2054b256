#!/bin/bash
# Start/stop the Kamailio SIP MESSAGE peer (Debian 12: apt-get install -y kamailio) from a clone
# of this repo. Tests start their own instances through tests/peers/sip/kamailio.py; this script
# is for running one by hand.
# Env: SIP_PORT (5062, UDP and TCP)  SIP_TCP (1: also listen on TCP; 0: UDP only)
#      KAM_AUTH (0; 1: MESSAGE needs digest auth authuser/authpass, realm textback.test)
#      KAM_CTL (unix:/tmp/kamailio-ctl.sock)  KAM_LOG (/tmp/kamailio.log)  KAM_PID (/tmp/kamailio.pid)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CFG="$HERE/kamailio-message.cfg"
SIP_PORT=${SIP_PORT:-5062}; SIP_TCP=${SIP_TCP:-1}; KAM_AUTH=${KAM_AUTH:-0}
KAM_CTL=${KAM_CTL:-unix:/tmp/kamailio-ctl.sock}
KAM_LOG=${KAM_LOG:-/tmp/kamailio.log}; KAM_PID=${KAM_PID:-/tmp/kamailio.pid}
ARGS=(-f "$CFG" -A "SIP_UDP=udp:127.0.0.1:$SIP_PORT" -A "CTL_SOCK=\"$KAM_CTL\"")
[ "$SIP_TCP" = 1 ] && ARGS+=(-A "SIP_TCP=tcp:127.0.0.1:$SIP_PORT")
[ "$KAM_AUTH" = 1 ] && ARGS+=(-A WITH_AUTH)
case "${1:-start}" in
  start)
    kamailio -c "${ARGS[@]}" >/dev/null 2>&1 || { kamailio -c "${ARGS[@]}"; exit 1; }
    kamailio "${ARGS[@]}" -P "$KAM_PID" -DD -E > "$KAM_LOG" 2>&1 &
    for i in $(seq 1 50); do
      kamcmd -s "$KAM_CTL" core.version >/dev/null 2>&1 && exit 0; sleep 0.1
    done
    echo "kamailio did not start" >&2; tail -20 "$KAM_LOG" >&2; exit 1 ;;
  stop)
    [ -f "$KAM_PID" ] && kill "$(cat "$KAM_PID")" 2>/dev/null && rm -f "$KAM_PID" || true ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
