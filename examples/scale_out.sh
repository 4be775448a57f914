#!/usr/bin/env bash
# Send throughput with N instances on one PostgreSQL database.
#
#   ../shared/perf/compare.sh            # once: builds gqlload and confab (release)
#   bash examples/scale_out.sh 2         # from the project's root; N = 1, 2, 4 …
#
# Starts N release instances on ports 18191… against one fresh database,
# seeds users and rooms through the first, then runs one `gqlload -s send`
# per instance at the same time, 32 connections split evenly, 10 s. Prints
# each instance's sends/s and errors, and the total. Loopback only; every
# run ends by itself.
set -uo pipefail
N=${1:-2}
HERE=$(cd "${PERF_DIR:-../shared/perf}" && pwd)
PG=${PG:-postgres://postgres@127.0.0.1:5432}
BIN=${CONFAB_BIN:-$PWD/target/release/confab}
G=${PERF_TARGET:-/tmp/confab-perf-target}/release/gqlload
D=$(mktemp -d /tmp/confab-scale.XXXXXX)
DB=confab_scale_$$
pids=()
cleanup() { for p in "${pids[@]:-}"; do [[ -n $p ]] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  psql "$PG/postgres" -qc "drop database if exists $DB with (force)" >/dev/null 2>&1; }
trap cleanup EXIT
psql "$PG/postgres" -qc "create database $DB" >/dev/null || exit 2
for i in $(seq 1 "$N"); do
  (cd "$D" && DATABASE_URL=$PG/$DB BIND_ADDR=127.0.0.1:$((18190 + i)) RUST_LOG=warn CONFAB_RATE_LIMITS=off exec "$BIN" serve) >"$D/s$i.log" 2>&1 &
  pids+=($!)
  # One at a time: the first creates the schema and the shared signing key.
  for _ in $(seq 1 120); do curl -fsS "http://127.0.0.1:$((18190 + i))/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
done
python3 "$HERE/setup_confab.py" --url http://127.0.0.1:18191/graphql --users 50 --rooms 10 --seed 0 --out "$D/c.json" >"$D/setup.log" 2>&1 || exit 2
loads=()
for i in $(seq 1 "$N"); do
  sed "s#127.0.0.1:8080#127.0.0.1:$((18190 + i))#g; s#127.0.0.1:18191#127.0.0.1:$((18190 + i))#g" "$D/c.json" >"$D/c$i.json"
  "$G" -c "$D/c$i.json" -s send -q --set concurrency=$((32 / N)) --set duration_s=10 >"$D/r$i.out" 2>&1 &
  loads+=($!)
done
wait "${loads[@]}"
python3 - "$D" "$N" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
total = 0.0
for i in range(1, n + 1):
    line = next((l for l in open(f"{d}/r{i}.out") if l.startswith("RESULT")), "")
    f = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    total += float(f.get("rps", 0))
    print(f"instance {i}: {f.get('rps')} sends/s, {f.get('err')} errors")
print(f"{n} instance(s): {total:.0f} sends/s in all")
PY
