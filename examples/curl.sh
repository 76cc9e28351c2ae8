#!/usr/bin/env bash
# A curl walk-through of estrom: tail a query, send documents, see them arrive.
#
#   estrom up                 # in one terminal
#   examples/curl.sh          # in another
#
# Every step prints the command it runs, so you can copy it.  TAILOR and BEATER move the addresses.
set -euo pipefail

TAILOR="${TAILOR:-http://127.0.0.1:8000}"
BEATER="${BEATER:-http://127.0.0.1:8001}"

step() { printf '\n\033[1m# %s\033[0m\n' "$*" >&2; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

step "1. Tail 'foo AND bar' on index events, for at most 2 hits or 10 seconds (runs in the background)"
run curl -sN "$TAILOR/api/v0.1/docs?i=events&q=foo%20AND%20bar&limit=2&timeout=10" &
tail_pid=$!
sleep 1

step "2. Send one document, a JSON array, and NDJSON with one bad line: only matching documents reach the tail"
run curl -s -XPOST "$BEATER/api/v0.1/beat/events" -d '{"message": "bar and foo"}'
echo
run curl -s -XPOST "$BEATER/api/v0.1/beat/events" -d '[{"message": "foo only"}, {"message": "FOO, then Bar"}]'
echo
run curl -s -XPOST "$BEATER/api/v0.1/beat/events" -H 'content-type: application/x-ndjson' \
    --data-binary $'{"message": "no match here"}\n{not json}\n'
echo
wait "$tail_pid"

step "3. Equivalent queries share one subscription id: 'bar AND foo' and '+FOO +bar' answer the same id"
for q in 'bar%20AND%20foo' '%2BFOO%20%2Bbar'; do
    run curl -sN "$TAILOR/api/v0.1/docs?i=events&q=$q&timeout=0.1"
done

step "4. Bad input is a 4xx with a JSON body naming the problem"
run curl -s "$TAILOR/api/v0.1/docs?i=events&q=title:%22unclosed"
echo
run curl -s "$TAILOR/api/v0.1/docs?s=0000000000000000"
echo

step "5. NDJSON, one hit per line (the first line names the subscription), for jq"
run curl -sN "$TAILOR/api/v0.1/docs?i=events&q=foo&format=ndjson&limit=1&timeout=10" &
tail_pid=$!
sleep 1
run curl -s -XPOST "$BEATER/api/v0.1/beat/events" -d '{"message": "foo in ndjson"}'
echo
wait "$tail_pid"

step "6. Resume: what 'foo' matched after an event id (a hit's _seq), then live; SSE takes Last-Event-ID"
run curl -s -XPOST "$BEATER/api/v0.1/beat/events" -d '[{"message": "foo one"}, {"message": "foo two"}]'
echo
run curl -sN "$TAILOR/api/v0.1/docs?i=events&q=foo&since=1&timeout=1"
run curl -sN "$TAILOR/api/v0.1/docs?i=events&q=foo&format=sse&timeout=1" -H 'Last-Event-ID: 1'

step "7. Health of both services"
run curl -s "$TAILOR/api/v0.1/health"
run curl -s "$BEATER/api/v0.1/health"
