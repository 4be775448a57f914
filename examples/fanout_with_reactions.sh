#!/usr/bin/env bash
# Fan-out with reactions in the mix, beside compare.sh's plain fan-out, on PostgreSQL.
#
#   ../shared/perf/compare.sh                  # once: builds gqlload, perfprobe, confab (release)
#   bash examples/fanout_with_reactions.sh     # from the project's root
#
# Runs, N times each (N=2): the probe's fan-out, Confab's (1,000 messageAdded
# subscribers, 20 sends/s), and two mixed runs where each publish is 4 sends
# plus an add and a remove of a reaction (a third of the operations are
# reactions, 20 operations/s): roomEvents subscribers, then messageAdded
# subscribers. Prints p99/p50 of send->frame for the marked sends and the
# deliveries. SKIP_PROBE=1 / SKIP_PLAIN=1 leave runs out. Loopback only;
# every run ends by itself.
set -uo pipefail
HERE=$(cd "${PERF_DIR:-../shared/perf}" && pwd)
PG=${PG:-postgres://postgres@127.0.0.1:5432}
OUT=${OUT:-$(mktemp -d /tmp/confab-fanout.XXXXXX)}; mkdir -p "$OUT"
N=${N:-2}
T=${PERF_TARGET:-/tmp/confab-perf-target}/release
G=$T/gqlload
PROBE=$T/perfprobe
BIN=$PWD/target/release/confab
pids=(); dbs=()
cleanup() { for p in "${pids[@]:-}"; do [[ -n $p ]] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  for d in "${dbs[@]:-}"; do [[ -n $d ]] && psql "$PG/postgres" -qc "drop database if exists $d with (force)" >/dev/null 2>&1; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
new_db() { local d=confab_fan_$$_$RANDOM; psql "$PG/postgres" -qc "create database $d" >/dev/null || exit 2; dbs+=("$d"); echo "$d"; }
wait_up() { for _ in $(seq 1 120); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.5; done; exit 2; }
run() { local tag=$1 cfg=$2 pid=$3; shift 3
  "$G" -c "$cfg" --server-pid "$pid" -q --json "$OUT/$tag.json" "$@" >"$OUT/$tag.log" 2>&1
  python3 -c "import json,sys; d=json.load(open('$OUT/$tag.json')); print('$tag', 'p99', d.get('lat_p99_ms'), 'p50', d.get('lat_p50_ms'), 'delivered', d.get('delivered'), 'of', d.get('expected'), 'unmarked', d.get('unmarked'), 'errors', d.get('errors'))"; }
if [[ ${SKIP_PROBE:-0} != 1 ]]; then
pdb=$(new_db); pport=$(free_port)
psql "$PG/$pdb" -q -f "$HERE/pg/probe-schema.sql" >/dev/null 2>&1
PROBE_PG_URL=$PG/$pdb PROBE_ADDR=127.0.0.1:$pport PROBE_TOKEN=probe-token "$PROBE" >"$OUT/probe.log" 2>&1 &
pp=$!; pids+=("$pp"); wait_up "http://127.0.0.1:$pport/health"
sed "s#127.0.0.1:18080#127.0.0.1:$pport#g" "$HERE/probe.json" >"$OUT/probe.json"
for i in $(seq 1 $N); do run probe_fanout_$i "$OUT/probe.json" "$pp" -s fanout --set subscribers=1000 --set messages=200 --set rate=20; done
kill "$pp"; wait "$pp" 2>/dev/null
fi
cdb=$(new_db); cport=$(free_port); work=$(mktemp -d)
(cd "$work" && DATABASE_URL=$PG/$cdb BIND_ADDR=127.0.0.1:$cport RUST_LOG=warn CONFAB_RATE_LIMITS=off exec "$BIN" serve) >"$OUT/confab.log" 2>&1 &
cp=$!; pids+=("$cp"); wait_up "http://127.0.0.1:$cport/healthz"
python3 "$HERE/setup_confab.py" --url "http://127.0.0.1:$cport/graphql" --users 50 --rooms 10 --seed 100 --out "$OUT/confab.json" >"$OUT/setup.log" 2>&1 || exit 2
[[ ${SKIP_PLAIN:-0} == 1 ]] || for i in $(seq 1 $N); do run confab_fanout_$i "$OUT/confab.json" "$cp" -s fanout --set subscribers=1000 --set messages=200 --set rate=20; done
# mixed: each publish = 4 sends + add + remove reaction (a third reactions), roomEvents subscribers
python3 - "$OUT/confab.json" "$OUT/mixed.json" "http://127.0.0.1:$cport/graphql" <<'PY'
import json, sys, urllib.request
cfg = json.load(open(sys.argv[1])); url = sys.argv[3]
room = cfg["lists"]["fanout_room"][0]
tokfile = cfg["auth"]["tokens_file"]
import os
tok = open(os.path.join(os.path.dirname(sys.argv[1]), tokfile)).read().split()[0]
req = urllib.request.Request(url, data=json.dumps({"query": "mutation($r: ID!) { sendMessage(input: {roomId: $r, content: \"reaction target\"}) { id } }", "variables": {"r": room}}).encode(), headers={"content-type": "application/json", "authorization": "Bearer " + tok})
target = json.load(urllib.request.urlopen(req))["data"]["sendMessage"]["id"]
cfg["documents"]["onEvents"] = "subscription E($roomId: ID!) { roomEvents(roomId: $roomId) { cursor kind actor { id username } message { id content clientMessageId createdAt sender { id username } reactions { emoji count viewerHasReacted } } } }"
cfg["documents"]["mix"] = "mutation Mix($input: SendMessageInput!, $plain: SendMessageInput!, $m: ID!) { s1: sendMessage(input: $input) { id } s2: sendMessage(input: $plain) { id } s3: sendMessage(input: $plain) { id } s4: sendMessage(input: $plain) { id } r1: addReaction(messageId: $m, emoji: \"👍\") { messageId } r2: removeReaction(messageId: $m, emoji: \"👍\") { messageId } }"
sc = dict(cfg["scenarios"]["fanout"])
sc["sub_document"] = "onEvents"
sc["publish_document"] = "mix"
pv = sc["publish_variables"]
sc["publish_variables"] = {"input": pv["input"], "plain": {"roomId": pv["input"]["roomId"], "content": "plain {{seq}}"}, "m": target}
sc["publishers"] = 1
cfg["scenarios"]["mixed"] = sc
sc2 = dict(sc); sc2["sub_document"] = "onMessage"
cfg["scenarios"]["mixed_msg"] = sc2
json.dump(cfg, open(sys.argv[2], "w"), indent=1)
PY
cp "$OUT"/*.tokens.txt "$OUT"/ 2>/dev/null
for i in $(seq 1 $N); do run confab_mixed_$i "$OUT/mixed.json" "$cp" -s mixed --set subscribers=1000 --set messages=100 --set rate=3.34; done
for i in $(seq 1 $N); do run confab_mixedmsg_$i "$OUT/mixed.json" "$cp" -s mixed_msg --set subscribers=1000 --set messages=100 --set rate=3.34; done
