#!/usr/bin/env bash
# local-cluster.sh up|down: the middleware and nodes as separate processes on
# this machine, pid and log files under $RUN. Used by `task up` / `task down`.
set -euo pipefail
cmd=${1:?usage: local-cluster.sh up|down}
RUN=${RUN:-run} DATA=${DATA:-memstore-data} LISTEN=${LISTEN:-127.0.0.1:4222} NODES=${NODES:-"1 2 3 4 5"}
BIN=${BIN:-$RUN/memstore}
SERVER="nats://$LISTEN"
mkdir -p "$RUN"
case "$cmd" in
up)
	n=$(wc -w <<<"$NODES")
	"$BIN" middleware --listen "$LISTEN" --data "$DATA/middleware" --bootstrap "$n" >"$RUN/middleware.log" 2>&1 &
	echo $! >"$RUN/middleware.pid"
	for _ in $(seq 1 50); do
		grep -q "middleware ready" "$RUN/middleware.log" && break
		sleep 0.1
	done
	for id in $NODES; do
		"$BIN" node --id "$id" --server "$SERVER" --data "$DATA/node$id" >"$RUN/node$id.log" 2>&1 &
		echo $! >"$RUN/node$id.pid"
	done
	for _ in $(seq 1 100); do
		"$BIN" status --server "$SERVER" --json 2>/dev/null | grep -q '"leader":[1-9]' && break
		sleep 0.2
	done
	"$BIN" status --server "$SERVER"
	;;
down)
	for f in "$RUN"/node*.pid "$RUN"/middleware.pid; do
		[ -f "$f" ] || continue
		kill "$(cat "$f")" 2>/dev/null || true
		rm -f "$f"
	done
	;;
*)
	echo "usage: local-cluster.sh up|down" >&2
	exit 2
	;;
esac
