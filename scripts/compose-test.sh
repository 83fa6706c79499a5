#!/usr/bin/env bash
# compose-test.sh: the Docker compose test of deploy/compose.yaml. Builds
# the FROM-scratch image, brings up the middleware and 5 nodes on two
# networks (host A: nodes 1-3, host B: nodes 4-5), writes and reads with
# the memstore CLI inside the middleware container and the nats CLI from
# this machine, cuts host B off
# (partition), checks writes go on, reconnects it and waits for it to catch
# up, kills the leader's container, checks writes go on, restarts it, and
# checks every acknowledged value. Tears everything down, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

P="memstore-ci-$$"
DC="docker-compose -f deploy/compose.yaml -p $P"
LOG="${TMPDIR:-/tmp}/$P.log"
cleanup() {
	$DC logs --no-color >"$LOG" 2>&1 || true
	$DC down -v --remove-orphans >/dev/null 2>&1 || true
	rm -f deploy/docker/memstore
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
ms() { $DC exec -T middleware /memstore --timeout 5s --server nats://alice:change-me-alice@127.0.0.1:4222 "$@"; }
wait_for() { # what, seconds, command...
	local what=$1 secs=$2; shift 2
	for _ in $(seq $((secs * 2))); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.5
	done
	echo "compose test: no $what after ${secs}s; logs in $LOG" >&2
	return 1
}
healthy() { # every node a live member, one leader, none lagging
	local st; st=$(ms status) || return 1
	grep -q "members \[1 2 3 4 5\]" <<<"$st" || return 1
	[ "$(grep -cE '^[1-5] +(leader|follower) +true' <<<"$st")" = 5 ] || return 1
	[ "$(awk '$1 ~ /^[1-5]$/ && $7 != 0' <<<"$st" | wc -l)" = 0 ]
}
declare -A want
put() { # path value: must be acknowledged
	ms put "$1" "$2" >/dev/null
	want[$1]=$2
}

t0=$(now)
CGO_ENABLED=0 go build -trimpath -o deploy/docker/memstore ./cmd/memstore
docker build -q -t memstore:dev deploy/docker >/dev/null
echo "image built in $(since "$t0")"

t1=$(now)
$DC up -d >/dev/null 2>&1
wait_for "healthy cluster" 90 healthy
echo "cluster up in $(since "$t1")"

for i in $(seq 1 10); do put "plant/a$i" "$i"; done
# Outputs are taken whole before grep -q reads them: with pipefail, a grep
# that stops at its match can fail the writer with SIGPIPE.
out=$(ms get plant/a1)
grep -q "by alice" <<<"$out" || { echo "compose test: writer is not alice" >&2; exit 1; }
if command -v nats >/dev/null; then # the plain nats CLI from this machine, through the published port
	url="nats://alice:change-me-alice@$($DC port middleware 4222)"
	out=$(nats --server "$url" req ms.api.put '{"path":"plant/nats","value":42}')
	grep -q '"ok":true' <<<"$out"
	nats --server "$url" pub ms.in.plant.natsin 43
	want[plant/nats]=42
	wait_for "the value published with nats pub" 10 ms get plant/natsin
	want[plant/natsin]=43
	out=$(nats --server "$url" req ms.api.get '{"path":"plant/nats"}')
	grep -q '"user":"alice"' <<<"$out"
	echo "nats CLI: req put, pub on ms.in and req get through the published port"
else
	echo "nats CLI not installed: its part skipped (.ci/run installs it)"
fi

docker network disconnect "${P}_hostb" "${P}_node4_1"
docker network disconnect "${P}_hostb" "${P}_node5_1"
for i in $(seq 11 20); do put "plant/a$i" "$i"; done
echo "host B cut off: writes went on on host A"
docker network connect "${P}_hostb" "${P}_node4_1"
docker network connect "${P}_hostb" "${P}_node5_1"
t2=$(now)
wait_for "host B catching up" 90 healthy
echo "host B caught up in $(since "$t2") after reconnecting"

leader=$(ms status | sed -n 's/.*leader \([0-9]*\),.*/\1/p')
t3=$(now)
docker kill "${P}_node${leader}_1" >/dev/null
wait_for "write after killing leader node $leader" 30 ms put plant/failover 1
echo "leader (node $leader) container killed: first write acknowledged $(since "$t3") later"
want[plant/failover]=1
for i in $(seq 21 30); do put "plant/a$i" "$i"; done
docker start "${P}_node${leader}_1" >/dev/null
wait_for "killed node catching up" 90 healthy

for path in "${!want[@]}"; do
	got=$(ms get "$path" | cut -f1)
	[ "$got" = "${want[$path]}" ] || { echo "compose test: $path is '$got', acknowledged ${want[$path]}" >&2; exit 1; }
done
echo "compose test passed: ${#want[@]} acknowledged values intact, total $(since "$t0")"
