#!/bin/bash
# Start/stop the node-smpp test SMSC (tests/peers/smsc/smsc.js) from a clone of this repo.
# Needs node (>=18) and npm with the npm registry. Tests start their own instances through
# tests/peers/smsc_peer.py; this script is for running one by hand.
# Env: SMSC_PORT (2775) CONTROL_PORT (8775) DLR_DELAY_MS (200) SMSC_SYSTEM_ID/SMSC_PASSWORD (any)
#      SMSC_WORKDIR (/tmp/pbx-textback-smsc-<hash of package-lock.json>) SMSC_LOG SMSC_PID
set -euo pipefail
SRC="$(cd "$(dirname "$0")" && pwd)"
HASH=$(sha256sum "$SRC/package-lock.json" | cut -c1-12)
# npm ci into a writable work dir outside the repo: node_modules never lands in the tree
HERE=${SMSC_WORKDIR:-/tmp/pbx-textback-smsc-$HASH}
SMSC_PORT=${SMSC_PORT:-2775}; CONTROL_PORT=${CONTROL_PORT:-8775}
export SMSC_PORT CONTROL_PORT
LOG=${SMSC_LOG:-/tmp/pbx-textback-smsc-$SMSC_PORT.log}
PIDF=${SMSC_PID:-/tmp/pbx-textback-smsc-$SMSC_PORT.pid}
case "${1:-start}" in
  install)
    mkdir -p "$HERE" && cp "$SRC"/package.json "$SRC"/package-lock.json "$HERE"/
    [ -d "$HERE/node_modules/smpp" ] || (cd "$HERE" && npm ci --no-audit --no-fund >/dev/null)
    echo "$HERE" ;;
  start)
    "$0" install >/dev/null
    cp "$SRC"/smsc.js "$HERE"/
    node "$HERE/smsc.js" > "$LOG" 2>&1 & echo $! > "$PIDF"
    for i in $(seq 1 50); do
      curl -sf "http://127.0.0.1:$CONTROL_PORT/health" >/dev/null && exit 0; sleep 0.1
    done
    echo "SMSC did not start" >&2; cat "$LOG" >&2; exit 1 ;;
  stop) [ -f "$PIDF" ] && kill "$(cat "$PIDF")" 2>/dev/null && rm -f "$PIDF" || true ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
