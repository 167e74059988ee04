#!/usr/bin/env bash
# `make up`: the production profile on this machine: persister processes plus the server,
# configured from var/services.env (written by `make services`) and the environment.
# Ctrl-C or SIGTERM stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
set -a
# shellcheck disable=SC1091
. var/services.env
set +a
export FITTRACK_PROFILE=production
PERSISTERS="${FITTRACK_PERSISTERS:-2}"
pids=()
stop() {
  trap - INT TERM EXIT
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait
}
trap stop INT TERM EXIT
# The schema once, before three processes would each try at start.
.venv/bin/python -m core.migrate
for _ in $(seq "$PERSISTERS"); do
  .venv/bin/python -m workers.persister &
  pids+=($!)
done
.venv/bin/python -m server &
pids+=($!)
wait -n "${pids[@]}"
