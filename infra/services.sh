#!/usr/bin/env bash
# Local production-profile services for Fittrack, loopback only, data under <repo>/var.
#
#   bash infra/services.sh start|stop|status
#   bash infra/services.sh kafka-kill|kafka-start|pg-stop|pg-start
#
# Services: PostgreSQL 15 (Debian cluster, data in var/postgres/data), Apache Kafka 4.x
# (KRaft combined broker+controller, var/kafka), FerretDB 1.x (MongoDB wire protocol on
# top of the PostgreSQL database `ferretdb`, var/ferretdb). See infra/README.md.
#
# Ports (env): FITTRACK_PG_PORT (55432), FITTRACK_KAFKA_PORT (59092),
#              FITTRACK_KAFKA_CONTROLLER_PORT (59093), FITTRACK_MONGO_PORT (57017).
# Must run as root (Debian's pg_createcluster / pg_ctlcluster manage the postgres user).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd -P)"   # repository root: infra/..
VAR="$ROOT/var"

PG_VERSION=15
PG_PORT="${FITTRACK_PG_PORT:-55432}"
KAFKA_PORT="${FITTRACK_KAFKA_PORT:-59092}"
KAFKA_CTL_PORT="${FITTRACK_KAFKA_CONTROLLER_PORT:-59093}"
MONGO_PORT="${FITTRACK_MONGO_PORT:-57017}"
PG_USER=fittrack
PG_APP_DB=fittrack
PG_FERRET_DB=ferretdb

# One Debian cluster per checkout: name derived from the repo path, so a fresh clone in
# another directory never reuses (or clobbers the data dir of) another checkout's cluster.
ROOT_HASH="$(printf '%s' "$ROOT" | sha1sum | cut -c1-10)"
PG_CLUSTER="fittrack_${ROOT_HASH}"
PG_DIR="$VAR/postgres"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgresql.log"
PG_CONF_DIR="/etc/postgresql/$PG_VERSION/$PG_CLUSTER"

KAFKA_DIR="$VAR/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOGS="$KAFKA_DIR/logs"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$SCRIPT_DIR/kafka/pom.xml")"
KAFKA_HEAP_OPTS="${FITTRACK_KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"

FERRET_DIR="$VAR/ferretdb"
FERRET_BIN="$VAR/bin/ferretdb-launcher"
FERRET_PID="$FERRET_DIR/ferretdb.pid"
FERRET_LOG="$FERRET_DIR/ferretdb.log"

START_TIMEOUT="${FITTRACK_START_TIMEOUT:-120}"   # seconds, per service

PG_DSN="postgresql://${PG_USER}@127.0.0.1:${PG_PORT}/${PG_APP_DB}"
# pool_max_conns: FerretDB 1.24 holds a connection per update of a command until the command returns; the
# metric store keeps its commands small enough for this pool (MAX_UPDATES_PER_COMMAND in fittrack/core/adapters/mongo_documents.py).
# plan_cache_mode: FerretDB's statements name the field as a parameter; only a plan made with the parameters
# can use the indexes on its tables (fittrack/core/adapters/ferretdb_indexes.py).
FERRET_POOL_MAX_CONNS=50
FERRET_PG_URL="postgres://${PG_USER}@127.0.0.1:${PG_PORT}/${PG_FERRET_DB}?sslmode=disable&pool_max_conns=${FERRET_POOL_MAX_CONNS}&plan_cache_mode=force_custom_plan"
FERRET_PG_DSN="postgresql://${PG_USER}@127.0.0.1:${PG_PORT}/${PG_FERRET_DB}"
KAFKA_BOOTSTRAP="127.0.0.1:${KAFKA_PORT}"
MONGO_URI="mongodb://127.0.0.1:${MONGO_PORT}/"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

port_open() { # port -> 0 if something accepts TCP connections on 127.0.0.1:port
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

port_pids() { # port -> pids of processes listening on that TCP port (any address)
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true
}

cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

read_pid() { # pidfile pattern -> prints pid if alive and its command line matches pattern
    local f="$1" pat="$2" pid
    [[ -f "$f" ]] || return 1
    pid="$(cat "$f" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    [[ "$(cmdline "$pid")" == *"$pat"* ]] || return 1
    printf '%s' "$pid"
}

wait_pid_exit() { # pid timeout_s -> 0 if exited in time
    local pid="$1" deadline=$((SECONDS + $2))
    while pid_alive "$pid"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

terminate() { # pid name timeout_s [signal]: signal (default TERM), wait, SIGKILL
    local pid="$1" name="$2" t="$3" sig="${4:-TERM}"
    pid_alive "$pid" || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    if ! wait_pid_exit "$pid" "$t"; then
        log "$name (pid $pid) did not stop within ${t}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_pid_exit "$pid" 10 || die "$name (pid $pid) survived SIGKILL"
    fi
}

# A port we need may be held by the same service started by ANOTHER checkout of this
# repository (CI clones into a fresh temp dir while an older clone's services still run).
# Processes started by this script carry a recognisable command line; stop those. Anything
# else holding the port is not ours: fail with a clear message.
free_port_from_other_checkouts() { # port service-name own-pid-or-empty
    local port="$1" name="$2" own="${3:-}" pid cl
    for pid in $(port_pids "$port"); do
        [[ "$pid" == "$own" ]] && continue
        cl="$(cmdline "$pid")"
        if [[ "$cl" == *"-Dfittrack.service=kafka"* || "$cl" == *"/var/bin/ferretdb-launcher"* ]]; then
            log "port $port is held by a Fittrack service of another checkout (pid $pid: ${cl:0:160}...); stopping it"
            terminate "$pid" "stale service" 60
        elif [[ "$cl" == *"/bin/postgres -D "*"/var/postgres/data -c config_file=/etc/postgresql/"*"/fittrack_"* ]]; then
            # postmaster of another checkout's cluster whose data dir was deleted under it
            # (pg_ctlcluster cannot stop it any more). SIGINT = fast shutdown.
            log "port $port is held by an orphaned Fittrack postgres (pid $pid: ${cl:0:160}...); stopping it"
            terminate "$pid" "stale postgres" 30 INT
        fi
    done
    for pid in $(port_pids "$port"); do
        [[ "$pid" == "$own" ]] && continue
        die "port $port (needed by $name) is in use by pid $pid: $(cmdline "$pid" | cut -c1-200). Stop it or choose another port via the FITTRACK_*_PORT variables."
    done
    return 0
}

wait_port() { # port name pid logfile
    local port="$1" name="$2" pid="$3" logf="$4" deadline=$((SECONDS + START_TIMEOUT))
    until port_open "$port"; do
        if ! pid_alive "$pid"; then
            log "$name exited during startup; last log lines ($logf):"
            tail -n 40 "$logf" >&2 2>/dev/null || true
            die "$name failed to start"
        fi
        ((SECONDS < deadline)) || { tail -n 40 "$logf" >&2 2>/dev/null || true; die "$name did not open port $port within ${START_TIMEOUT}s"; }
        sleep 0.3
    done
}

# ---------------------------------------------------------------- PostgreSQL

pg_cluster_line() { # name -> "ver name port status owner datadir logfile" or nothing
    pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v n="$1" '$1==v && $2==n' || true
}

# pg_lsclusters calls a cluster "online" when anything answers on its port, so two
# clusters sharing a port both look online; and a postmaster.pid left behind by a machine
# restart looks like a running server to pg_ctlcluster. Ask the data dir instead: the pid
# in its postmaster.pid must be alive and be a postgres serving that very directory.
postmaster_pid() { # datadir -> pid of the live postmaster serving it
    local datadir="$1" pid
    pid="$(head -n1 "$datadir/postmaster.pid" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && pid_alive "$pid" || return 1
    [[ "$(cmdline "$pid")" == *"postgres -D $datadir "* ]] || return 1
    printf '%s' "$pid"
}

pg_running() { postmaster_pid "$PG_DATA" >/dev/null; }

pg_ensure_installed() {
    if ! command -v pg_createcluster >/dev/null || [[ ! -x /usr/lib/postgresql/$PG_VERSION/bin/postgres ]]; then
        [[ $(id -u) -eq 0 ]] || die "postgresql-$PG_VERSION is not installed and we are not root"
        log "installing postgresql-$PG_VERSION from Debian packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends "postgresql-$PG_VERSION" >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "postgresql-$PG_VERSION" >/dev/null; }
        # the package creates and may start a default "main" cluster on 5432: leave it alone
    fi
}

# The postgres user must be able to traverse every parent of the data dir (mktemp -d
# makes 0700 dirs): add the search (x) bit for "others" where missing.
pg_fix_parent_permissions() {
    local d="$PG_DIR"
    while [[ "$d" != "/" ]]; do
        d="$(dirname "$d")"
        if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
            log "chmod o+x $d (the postgres user must traverse it to reach the data dir)"
            chmod o+x "$d"
        fi
    done
}

# Other fittrack_* clusters (other checkouts): drop those whose data dir is gone (deleted
# clones), stop those running on our port. Any non-Fittrack cluster on our port -> error.
pg_handle_other_clusters() {
    local ver name port status owner datadir rest
    while read -r ver name port status owner datadir rest; do
        [[ -n "$name" && "$name" != "$PG_CLUSTER" ]] || continue
        if [[ "$name" == fittrack_* && ! -f "$datadir/PG_VERSION" ]]; then
            log "dropping stale cluster $ver/$name (data dir $datadir no longer exists)"
            pg_dropcluster --stop "$ver" "$name" >/dev/null 2>&1 || {
                # Its postmaster may still run on deleted files: kill it by its pid, then drop the
                # config. Only a postgres serving that very data dir: the port may be ours now.
                local pmpid
                for pmpid in $(port_pids "$port"); do
                    # SIGINT = fast shutdown (SIGTERM would wait for connected clients)
                    if [[ "$(cmdline "$pmpid")" == *"postgres -D $datadir "* ]]; then terminate "$pmpid" "stale postgres" 30 INT; fi
                done
                rm -rf "/etc/postgresql/$ver/$name"
            }
            continue
        fi
        [[ "$port" == "$PG_PORT" ]] || continue
        local pmpid; pmpid="$(postmaster_pid "$datadir")" || continue
        if [[ "$name" == fittrack_* ]]; then
            log "stopping cluster $ver/$name of another checkout ($datadir), it holds port $PG_PORT"
            pg_ctlcluster "$ver" "$name" stop -m fast || terminate "$pmpid" "postgres of $ver/$name" 30 INT
        else
            die "PostgreSQL cluster $ver/$name (not Fittrack's) is running on port $PG_PORT; set FITTRACK_PG_PORT to another port"
        fi
    done < <(pg_lsclusters -h 2>/dev/null || true)
}

pg_write_hba() {
    cat >"$PG_CONF_DIR/pg_hba.conf" <<'EOF'
# Managed by infra/services.sh: local development cluster, trust on loopback only.
local   all   all                  trust
host    all   all   127.0.0.1/32   trust
host    all   all   ::1/128        trust
EOF
    chown postgres:postgres "$PG_CONF_DIR/pg_hba.conf"
}

pg_configure() {
    # port stays in postgresql.conf (pg_lsclusters/pg_ctlcluster read it from there);
    # everything else goes into conf.d, which Debian's postgresql.conf includes last.
    pg_conftool "$PG_VERSION" "$PG_CLUSTER" set port "$PG_PORT"
    mkdir -p "$PG_CONF_DIR/conf.d"
    cat >"$PG_CONF_DIR/conf.d/fittrack.conf" <<'EOF'
# Managed by infra/services.sh
listen_addresses = '127.0.0.1'
ssl = off
max_connections = 200
EOF
    chown -R postgres:postgres "$PG_CONF_DIR/conf.d"
    pg_write_hba
}

pg_create_if_missing() {
    if [[ -n "$(pg_cluster_line "$PG_CLUSTER")" ]]; then
        local registered; registered="$(pg_cluster_line "$PG_CLUSTER" | awk '{print $6}')"
        [[ "$registered" == "$PG_DATA" ]] || die "cluster $PG_CLUSTER is registered with data dir $registered, expected $PG_DATA"
        return 0
    fi
    mkdir -p "$PG_DIR"
    chown postgres:postgres "$PG_DIR"
    chmod 0750 "$PG_DIR"
    pg_fix_parent_permissions
    if [[ -f "$PG_DATA/PG_VERSION" ]]; then
        log "registering existing data dir $PG_DATA as cluster $PG_VERSION/$PG_CLUSTER"
    else
        log "creating cluster $PG_VERSION/$PG_CLUSTER in $PG_DATA"
    fi
    pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" -d "$PG_DATA" -l "$PG_LOG" \
        --start-conf manual --locale C.UTF-8 -e UTF8 -- --auth=trust >/dev/null \
        || die "pg_createcluster failed"
}

pg_start() {
    pg_ensure_installed
    pg_handle_other_clusters
    pg_create_if_missing
    pg_fix_parent_permissions
    pg_configure
    if pg_running; then
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" reload
    else
        free_port_from_other_checkouts "$PG_PORT" postgresql
        log "starting PostgreSQL $PG_VERSION/$PG_CLUSTER on 127.0.0.1:$PG_PORT"
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start 9>&- || { tail -n 30 "$PG_LOG" >&2 || true; die "PostgreSQL failed to start"; }
    fi
    local deadline=$((SECONDS + START_TIMEOUT))
    until pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; do
        ((SECONDS < deadline)) || die "PostgreSQL not ready on port $PG_PORT within ${START_TIMEOUT}s"
        sleep 0.3
    done
    pg_bootstrap_roles
}

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@"; }

pg_bootstrap_roles() {
    psql_admin <<SQL
SELECT 'CREATE ROLE ${PG_USER} LOGIN CREATEDB' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${PG_USER}') \gexec
SELECT 'CREATE DATABASE ${PG_APP_DB} OWNER ${PG_USER}' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '${PG_APP_DB}') \gexec
SELECT 'CREATE DATABASE ${PG_FERRET_DB} OWNER ${PG_USER}' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '${PG_FERRET_DB}') \gexec
SQL
}

pg_stop() {
    if pg_running; then
        log "stopping PostgreSQL $PG_VERSION/$PG_CLUSTER"
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast
    fi
}

pg_status() {
    if pg_running && [[ "$(pg_cluster_line "$PG_CLUSTER" | awk '{print $3}')" == "$PG_PORT" ]] \
        && pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
        echo "postgresql: up   (cluster $PG_VERSION/$PG_CLUSTER, 127.0.0.1:$PG_PORT, data $PG_DATA)"
    else
        echo "postgresql: down (cluster $PG_VERSION/$PG_CLUSTER, port $PG_PORT)"
        return 1
    fi
}

# ---------------------------------------------------------------- Kafka

kafka_pid() { read_pid "$KAFKA_PID" "-Dfittrack.root=$ROOT "; }

kafka_ensure_libs() {
    local stamp="$KAFKA_LIBS/.fittrack-kafka-$KAFKA_VERSION"
    [[ -f "$stamp" ]] && return 0
    command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
    log "fetching Kafka $KAFKA_VERSION jars with Maven into $KAFKA_LIBS"
    local tmp="$KAFKA_DIR/libs.tmp.$$"
    rm -rf "$tmp"; mkdir -p "$tmp"
    mvn -q -B -Dstyle.color=never -f "$SCRIPT_DIR/kafka/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$KAFKA_DIR/maven.log" 2>&1 \
        || { cat "$KAFKA_DIR/maven.log" >&2; rm -rf "$tmp"; die "maven could not fetch the Kafka jars"; }
    ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "kafka jar missing after maven run"; }
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    touch "$stamp"
}

kafka_java() { # extra java args...
    mkdir -p "$KAFKA_DIR/tmp"
    # shellcheck disable=SC2086
    java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Djava.io.tmpdir="$KAFKA_DIR/tmp" -DZstdTempFolder="$KAFKA_DIR/tmp" \
        -Dorg.xerial.snappy.tempdir="$KAFKA_DIR/tmp" \
        -Dlog4j2.configurationFile="$SCRIPT_DIR/kafka/log4j2.properties" \
        -Dkafka.logs.dir="$KAFKA_LOGS" \
        -cp "$KAFKA_LIBS/*" "$@"
}

kafka_write_config() {
    mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
    cat >"$KAFKA_PROPS" <<EOF
# Generated by infra/services.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${KAFKA_CTL_PORT}
listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CTL_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${KAFKA_DATA}
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# after a SIGKILL the restarted node waits for its old registration's session to expire
# (default 9 s): keep that short for kill/restart tests
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
num.network.threads=2
num.io.threads=4
log.retention.hours=168
log.segment.bytes=104857600
log.retention.check.interval.ms=300000
EOF
}

kafka_format_once() {
    [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
    local cid
    if [[ -s "$KAFKA_DIR/cluster.id" ]]; then
        cid="$(cat "$KAFKA_DIR/cluster.id")"
    else
        cid="$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
        [[ -n "$cid" ]] || die "could not generate a Kafka cluster id"
        printf '%s\n' "$cid" >"$KAFKA_DIR/cluster.id"
    fi
    log "formatting Kafka storage (cluster id $cid)"
    kafka_java kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_PROPS" -g >"$KAFKA_LOGS/format.log" 2>&1 \
        || { cat "$KAFKA_LOGS/format.log" >&2; die "kafka storage format failed"; }
}

kafka_start() {
    local pid
    if pid="$(kafka_pid)"; then
        wait_port "$KAFKA_PORT" kafka "$pid" "$KAFKA_LOGS/server.log"
        return 0
    fi
    kafka_ensure_libs
    kafka_write_config
    kafka_format_once
    free_port_from_other_checkouts "$KAFKA_PORT" kafka
    free_port_from_other_checkouts "$KAFKA_CTL_PORT" kafka-controller
    log "starting Kafka $KAFKA_VERSION on $KAFKA_BOOTSTRAP (controller 127.0.0.1:$KAFKA_CTL_PORT)"
    local logf="$KAFKA_LOGS/server.log" before=0
    [[ -f "$logf" ]] && before="$(stat -c %s "$logf")"
    # exec under setsid: own session, so the broker outlives this shell / CI step;
    # $! is the java pid (setsid does not fork when the caller is not a group leader).
    (
        cd "$KAFKA_DIR"
        exec setsid java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
            -Djava.awt.headless=true -Dfittrack.service=kafka "-Dfittrack.root=$ROOT" \
            -Djava.io.tmpdir="$KAFKA_DIR/tmp" -DZstdTempFolder="$KAFKA_DIR/tmp" \
            -Dorg.xerial.snappy.tempdir="$KAFKA_DIR/tmp" \
            -Dlog4j2.configurationFile="$SCRIPT_DIR/kafka/log4j2.properties" \
            -Dkafka.logs.dir="$KAFKA_LOGS" \
            -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS"
    ) </dev/null 9>&- >>"$KAFKA_LOGS/stdout.log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$KAFKA_PID"
    wait_port "$KAFKA_PORT" kafka "$pid" "$logf"
    # The socket is bound before the broker has caught up with the metadata log: also wait
    # for the startup-complete line in this run's part of server.log.
    local deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        local size; size="$(stat -c %s "$logf" 2>/dev/null || echo 0)"
        ((size < before)) && before=0   # rotated
        tail -c +"$((before + 1))" "$logf" 2>/dev/null | grep -q 'Kafka Server started' && break
        pid_alive "$pid" || { tail -n 40 "$logf" >&2 || true; die "kafka exited during startup"; }
        ((SECONDS < deadline)) || die "kafka did not report 'Kafka Server started' within ${START_TIMEOUT}s (see $logf)"
        sleep 0.3
    done
    log "kafka up (pid $pid)"
}

kafka_stop() {
    local pid
    if pid="$(kafka_pid)"; then
        log "stopping Kafka (pid $pid)"
        terminate "$pid" kafka 60
    fi
    rm -f "$KAFKA_PID"
}

kafka_kill() {
    local pid
    if pid="$(kafka_pid)"; then
        log "SIGKILL Kafka (pid $pid)"
        kill -KILL "$pid"
        wait_pid_exit "$pid" 15 || die "kafka pid $pid still alive after SIGKILL"
    else
        log "kafka is not running"
    fi
    rm -f "$KAFKA_PID"
}

kafka_status() {
    local pid
    if pid="$(kafka_pid)" && port_open "$KAFKA_PORT" && port_pids "$KAFKA_PORT" | grep -qx "$pid"; then
        echo "kafka:      up   (pid $pid, $KAFKA_BOOTSTRAP, controller 127.0.0.1:$KAFKA_CTL_PORT, Kafka $KAFKA_VERSION)"
    else
        echo "kafka:      down (port $KAFKA_PORT)"
        return 1
    fi
}

# ---------------------------------------------------------------- FerretDB

ferret_pid() { read_pid "$FERRET_PID" "$FERRET_BIN"; }

ferret_ensure_built() {
    local src="$SCRIPT_DIR/ferretdb"
    if [[ -x "$FERRET_BIN" && "$FERRET_BIN" -nt "$src/main.go" && "$FERRET_BIN" -nt "$src/go.mod" && "$FERRET_BIN" -nt "$src/go.sum" ]]; then
        return 0
    fi
    command -v go >/dev/null || die "go not found (needed once to build the FerretDB launcher)"
    log "building FerretDB launcher into $FERRET_BIN (first build downloads modules, ~1 min)"
    mkdir -p "$VAR/bin"
    (cd "$src" && GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" \
        go build -trimpath -o "$FERRET_BIN.tmp" .) || die "go build of the FerretDB launcher failed"
    mv -f "$FERRET_BIN.tmp" "$FERRET_BIN"
}

ferret_start() {
    local pid
    if pid="$(ferret_pid)"; then
        wait_port "$MONGO_PORT" ferretdb "$pid" "$FERRET_LOG"
        return 0
    fi
    ferret_ensure_built
    mkdir -p "$FERRET_DIR"
    free_port_from_other_checkouts "$MONGO_PORT" ferretdb
    log "starting FerretDB on 127.0.0.1:$MONGO_PORT (PostgreSQL database $PG_FERRET_DB)"
    (
        cd "$FERRET_DIR"
        exec setsid "$FERRET_BIN" -listen "127.0.0.1:$MONGO_PORT" -postgresql-url "$FERRET_PG_URL" \
            -log-level "${FITTRACK_FERRETDB_LOG_LEVEL:-warn}" -watchdog "${FITTRACK_FERRETDB_WATCHDOG:-10s}" \
            -dump-dir "$FERRET_DIR"
    ) </dev/null 9>&- >>"$FERRET_LOG" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$FERRET_PID"
    wait_port "$MONGO_PORT" ferretdb "$pid" "$FERRET_LOG"
    log "ferretdb up (pid $pid)"
}

ferret_stop() {
    local pid
    if pid="$(ferret_pid)"; then
        log "stopping FerretDB (pid $pid)"
        terminate "$pid" ferretdb 30
    fi
    rm -f "$FERRET_PID"
}

ferret_status() {
    local pid
    if pid="$(ferret_pid)" && port_open "$MONGO_PORT" && port_pids "$MONGO_PORT" | grep -qx "$pid"; then
        echo "ferretdb:   up   (pid $pid, 127.0.0.1:$MONGO_PORT, backend postgres database $PG_FERRET_DB)"
    else
        echo "ferretdb:   down (port $MONGO_PORT)"
        return 1
    fi
}

# ---------------------------------------------------------------- commands

print_env() {
    local envf="$VAR/services.env"
    {
        echo "FITTRACK_PG_DSN=$PG_DSN"
        echo "FITTRACK_KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP"
        echo "FITTRACK_MONGO_URI=$MONGO_URI"
        echo "FITTRACK_FERRETDB_PG_DSN=$FERRET_PG_DSN"
    } >"$envf.tmp"
    mv -f "$envf.tmp" "$envf"
    cat "$envf"
}

check_ports() {
    local p
    for p in "$PG_PORT" "$KAFKA_PORT" "$KAFKA_CTL_PORT" "$MONGO_PORT"; do
        [[ "$p" =~ ^[0-9]+$ ]] && ((p >= 1024 && p <= 65535)) || die "invalid port '$p'"
    done
    [[ "$(printf '%s\n' "$PG_PORT" "$KAFKA_PORT" "$KAFKA_CTL_PORT" "$MONGO_PORT" | sort -u | wc -l)" == 4 ]] \
        || die "the four ports must be distinct"
}

cmd_start() {
    [[ $(id -u) -eq 0 ]] || die "run as root (pg_createcluster/pg_ctlcluster need it)"
    check_ports
    mkdir -p "$VAR"
    local t0=$SECONDS
    # Services of another checkout on our ports go first (FerretDB before its PostgreSQL).
    free_port_from_other_checkouts "$MONGO_PORT" ferretdb "$(ferret_pid || true)"
    free_port_from_other_checkouts "$KAFKA_PORT" kafka "$(kafka_pid || true)"
    free_port_from_other_checkouts "$KAFKA_CTL_PORT" kafka-controller "$(kafka_pid || true)"
    pg_start
    kafka_start
    ferret_start
    log "all services up in $((SECONDS - t0))s (root $ROOT)"
    print_env
}

cmd_stop() {
    ferret_stop
    kafka_stop
    pg_stop
}

cmd_status() {
    local rc=0
    pg_status || rc=1
    kafka_status || rc=1
    ferret_status || rc=1
    return $rc
}

usage() {
    echo "usage: $0 {start|stop|status|kafka-kill|kafka-start|kafka-stop|pg-stop|pg-start|ferretdb-stop|ferretdb-start|env}" >&2
    exit 2
}

# Serialise concurrent invocations for this checkout (status does not lock). Daemons are
# started with fd 9 closed so they do not inherit (and keep holding) the lock.
lock() {
    mkdir -p "$VAR"
    exec 9>"$VAR/.services.lock"
    flock -w 300 9 || die "another services.sh holds $VAR/.services.lock"
}

case "${1:-}" in
    start|stop|restart|kafka-*|pg-*|ferretdb-*) lock ;;
esac

case "${1:-}" in
    start)          cmd_start ;;
    stop)           cmd_stop ;;
    status)         cmd_status ;;
    restart)        cmd_stop; cmd_start ;;
    kafka-kill)     kafka_kill ;;
    kafka-start)    check_ports; kafka_start ;;
    kafka-stop)     kafka_stop ;;
    pg-stop)        pg_stop ;;
    pg-start)       check_ports; pg_start ;;
    ferretdb-stop)  ferret_stop ;;
    ferretdb-start) check_ports; ferret_start ;;
    env)            print_env ;;
    *)              usage ;;
esac
