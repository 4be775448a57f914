#!/usr/bin/env bash
# Fan-out with reactions in the mix, beside compare.sh's plain fan-out, on PostgreSQL.
#
#   ../shared/perf/compare.sh                  # once: builds gqlload, perfprobe, confab (release)
#   bash examples/fanout_with_reactions.sh     # from the project's root
#
# Runs, N times each (N=2): the probe's fan-out, Confab's (1,000 messageAdded
# subscribers, 20 sends/s), and two mixed runs at 20 operations/s of which a
# third are reactions (each publish a send; every second one also adds or
# removes a reaction): 1,000 roomEvents subscribers, then 1,000 messageAdded
# subscribers. BURST=1 adds the same two with the operations in bursts of six.
# Prints p99/p50 of send->frame for the marked sends and the deliveries.
# SKIP_PROBE=1 / SKIP_PLAIN=1 leave runs out; CONFAB_BIN names another build
# and CONFAB_ARGS adds server flags (e.g. --shared-renders off). Loopback only; every run ends
# by itself.
set -uo pipefail
HERE=$(cd "${PERF_DIR:-../shared/perf}" && pwd)
PG=${PG:-postgres://postgres@127.0.0.1:5432}
OUT=${OUT:-$(mktemp -d /tmp/confab-fanout.XXXXXX)}; mkdir -p "$OUT"
N=${N:-2}
T=${PERF_TARGET:-/tmp/confab-perf-target}/release
G=$T/gqlload
PROBE=$T/perfprobe
BIN=${CONFAB_BIN:-$PWD/target/release/confab}
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
(cd "$work" && DATABASE_URL=$PG/$cdb BIND_ADDR=127.0.0.1:$cport RUST_LOG=warn CONFAB_RATE_LIMITS=off exec "$BIN" serve ${CONFAB_ARGS:-}) >"$OUT/confab.log" 2>&1 &
cp=$!; pids+=("$cp"); wait_up "http://127.0.0.1:$cport/healthz"
python3 "$HERE/setup_confab.py" --url "http://127.0.0.1:$cport/graphql" --users 50 --rooms 10 --seed 100 --out "$OUT/confab.json" >"$OUT/setup.log" 2>&1 || exit 2
[[ ${SKIP_PLAIN:-0} == 1 ]] || for i in $(seq 1 $N); do run confab_fanout_$i "$OUT/confab.json" "$cp" -s fanout --set subscribers=1000 --set messages=200 --set rate=20; done
# mixed: 20 operations/s, a third of them reactions, spread evenly: every
# publish is one marked send, and every second publish also adds or removes
# (in turn) a reaction on one message (4 publishes: 4 sends + 2 reactions).
# BURST=1 adds the harsher shape of earlier runs: each publish is 4 sends and
# an add and a remove (6 events at once, 3.34 publishes/s).
python3 - "$OUT/confab.json" "$OUT/mixed.json" "http://127.0.0.1:$cport/graphql" <<'PY'
import json, os, sys, urllib.request
cfg = json.load(open(sys.argv[1])); url = sys.argv[3]
room = cfg["lists"]["fanout_room"][0]
tok = open(os.path.join(os.path.dirname(sys.argv[1]), cfg["auth"]["tokens_file"])).read().split()[0]
req = urllib.request.Request(url, data=json.dumps({"query": "mutation($r: ID!) { sendMessage(input: {roomId: $r, content: \"reaction target\"}) { id } }", "variables": {"r": room}}).encode(), headers={"content-type": "application/json", "authorization": "Bearer " + tok})
target = json.load(urllib.request.urlopen(req))["data"]["sendMessage"]["id"]
cfg["documents"]["onEvents"] = "subscription E($roomId: ID!) { roomEvents(roomId: $roomId) { cursor kind actor { id username } message { id content clientMessageId createdAt sender { id username } reactions { emoji count viewerHasReacted } } } }"
cfg["documents"]["mix"] = "mutation Mix($input: SendMessageInput!, $m: ID!, $add: Boolean!, $remove: Boolean!) { s: sendMessage(input: $input) { id } a: addReaction(messageId: $m, emoji: \"👍\") @include(if: $add) { messageId } r: removeReaction(messageId: $m, emoji: \"👍\") @include(if: $remove) { messageId } }"
cfg["documents"]["burst"] = "mutation Burst($input: SendMessageInput!, $plain: SendMessageInput!, $m: ID!) { s1: sendMessage(input: $input) { id } s2: sendMessage(input: $plain) { id } s3: sendMessage(input: $plain) { id } s4: sendMessage(input: $plain) { id } r1: addReaction(messageId: $m, emoji: \"👍\") { messageId } r2: removeReaction(messageId: $m, emoji: \"👍\") { messageId } }"
cfg["lists"]["mix_add"] = [True, False, False, False]
cfg["lists"]["mix_remove"] = [False, False, True, False]
base = cfg["scenarios"]["fanout"]
pv = base["publish_variables"]
def scenario(sub, doc, variables):
    sc = dict(base); sc["sub_document"] = sub; sc["publish_document"] = doc
    sc["publish_variables"] = variables; sc["publishers"] = 1
    return sc
even = {"input": pv["input"], "m": target, "add": "{{seq_pick:mix_add}}", "remove": "{{seq_pick:mix_remove}}"}
burst = {"input": pv["input"], "plain": {"roomId": pv["input"]["roomId"], "content": "plain {{seq}}"}, "m": target}
cfg["scenarios"]["mixed"] = scenario("onEvents", "mix", even)
cfg["scenarios"]["mixed_msg"] = scenario("onMessage", "mix", even)
cfg["scenarios"]["burst"] = scenario("onEvents", "burst", burst)
cfg["scenarios"]["burst_msg"] = scenario("onMessage", "burst", burst)
json.dump(cfg, open(sys.argv[2], "w"), indent=1)
PY
cp "$OUT"/*.tokens.txt "$OUT"/ 2>/dev/null
for i in $(seq 1 $N); do run confab_mixed_$i "$OUT/mixed.json" "$cp" -s mixed --set subscribers=1000 --set messages=134 --set rate=13.34; done
for i in $(seq 1 $N); do run confab_mixedmsg_$i "$OUT/mixed.json" "$cp" -s mixed_msg --set subscribers=1000 --set messages=134 --set rate=13.34; done
if [[ ${BURST:-0} == 1 ]]; then
for i in $(seq 1 $N); do run confab_burst_$i "$OUT/mixed.json" "$cp" -s burst --set subscribers=1000 --set messages=100 --set rate=3.34; done
for i in $(seq 1 $N); do run confab_burstmsg_$i "$OUT/mixed.json" "$cp" -s burst_msg --set subscribers=1000 --set messages=100 --set rate=3.34; done
fi
# What the server says it did: deliveries, and how many came from shared renders.
curl -fsS "http://127.0.0.1:$cport/metrics" | grep -E '^confab_subscription_events_(delivered|shared)_total' || true
