#!/usr/bin/env bash
# `make up`: the production profile on this machine: persisters, a dispatcher, an evaluator and the server.
# Settings come from the environment; what it leaves unset comes from var/services.env
# (written by `make services`). Ctrl-C or SIGTERM stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f var/services.env ]; then
  while IFS='=' read -r name value; do
    [ -n "$name" ] && [ -z "${!name:-}" ] && export "$name=$value"
  done < var/services.env
fi
export FITTRACK_PROFILE=production
PERSISTERS="${FITTRACK_PERSISTERS:-2}"
pids=()
stop() {
  trap - INT TERM EXIT
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait
}
trap stop INT TERM EXIT
# The schema once, before the processes would each try at start.
.venv/bin/python -m fittrack.app.migrate
for _ in $(seq "$PERSISTERS"); do
  .venv/bin/python -m fittrack.app.persister &
  pids+=($!)
done
# One dispatcher stores and delivers notifications; more would share the work (FITTRACK_NOTIFICATIONS_PARTITIONS).
.venv/bin/python -m fittrack.app.dispatcher &
pids+=($!)
# One evaluator: it nudges users behind their goals at their local slot times (a second would only repeat it).
.venv/bin/python -m fittrack.app.evaluator &
pids+=($!)
.venv/bin/python -m fittrack.app.server &
pids+=($!)
# When any of them ends, stop the others: a half-running stack is worse than none.
wait -n "${pids[@]}"
