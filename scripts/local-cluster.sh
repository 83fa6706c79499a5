#!/usr/bin/env bash
# local-cluster.sh up|down: the middleware and nodes as separate processes on
# this machine, pid and log files under $RUN. Used by `task up` / `task down`
# and, for the two-host layout, `task up:hosta` / `task up:hostb`.
#   MIDDLEWARE=no     start only nodes (host B)
#   BOOTSTRAP=5       nodes the middleware waits for (default: the nodes here)
#   MWFLAGS=...       more middleware flags (--auth FILE, --insecure, --metrics ...)
#   NODE_URL=...      where nodes connect; {id} is replaced by the node's id,
#                     e.g. nats://node{id}:PASSWORD@hosta:4222 (default nats://$LISTEN)
set -euo pipefail
cmd=${1:?usage: local-cluster.sh up|down}
RUN=${RUN:-run} DATA=${DATA:-memstore-data} LISTEN=${LISTEN:-127.0.0.1:4222} NODES=${NODES:-"1 2 3 4 5"}
BIN=${BIN:-$RUN/memstore} MIDDLEWARE=${MIDDLEWARE:-yes} BOOTSTRAP=${BOOTSTRAP:-$(wc -w <<<"$NODES")}
MWFLAGS=${MWFLAGS:-} NODE_URL=${NODE_URL:-"nats://$LISTEN"}
SERVER=${SERVER:-"nats://$LISTEN"}
mkdir -p "$RUN"
case "$cmd" in
up)
	if [ "$MIDDLEWARE" = yes ]; then
		# shellcheck disable=SC2086 # MWFLAGS holds several flags
		"$BIN" middleware --listen "$LISTEN" --data "$DATA/middleware" --bootstrap "$BOOTSTRAP" $MWFLAGS >"$RUN/middleware.log" 2>&1 &
		echo $! >"$RUN/middleware.pid"
		for _ in $(seq 1 50); do
			grep -q "middleware ready" "$RUN/middleware.log" && break
			sleep 0.1
		done
	fi
	for id in $NODES; do
		"$BIN" node --id "$id" --server "${NODE_URL//\{id\}/$id}" --data "$DATA/node$id" >"$RUN/node$id.log" 2>&1 &
		echo $! >"$RUN/node$id.pid"
	done
	[ "$MIDDLEWARE" = yes ] || exit 0
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
