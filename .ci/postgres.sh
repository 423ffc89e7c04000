#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for running Kefu's test suite against PostgreSQL.
#
# Usage:
#   .ci/postgres.sh start <dir> <port>
#       Create (first time only) and start a cluster in <dir>, listening on 127.0.0.1:<port>
#       only, with trust auth, a role and a database for the tests. Prints the URL to put in
#       KEFU_DATABASE_URL as the last line of stdout; progress goes to stderr. If the cluster in
#       <dir> is already running on <port>, it just makes sure the role and database exist.
#   .ci/postgres.sh stop <dir>
#       Stop the cluster in <dir>. Does nothing if it is not running. Leaves <dir> in place.
#
# Run the suite against PostgreSQL on your own machine:
#   dir=$(mktemp -d)
#   url=$(.ci/postgres.sh start "$dir" 55432)
#   KEFU_DATABASE_URL="$url" make test
#   .ci/postgres.sh stop "$dir" && rm -rf "$dir"
#
# What ends up in <dir>: data/ (the cluster), postgres.log (the server's log), initdb.log and
# the unix socket .s.PGSQL.<port> (the socket lives here, not in /var/run/postgresql).
#
# Settings (environment):
#   KEFU_PG_BIN   PostgreSQL binaries    (default /usr/lib/postgresql/15/bin)
#   KEFU_PG_USER  role the tests log in as (default kefu)
#   KEFU_PG_DB    database for the tests   (default kefu_test)
#
# initdb refuses to run as root, so as root the server runs as the "postgres" user (which
# Debian's postgresql package creates) and <dir> is handed to that user; as any other user it
# runs as you. The cluster is for tests only: fsync is off and anyone on this machine may log in.
set -euo pipefail

PG_BIN=${KEFU_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=${KEFU_PG_USER:-kefu}
PG_DB=${KEFU_PG_DB:-kefu_test}

log() { echo "postgres.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    echo "usage: $0 start <dir> <port>" >&2
    echo "       $0 stop <dir>" >&2
    exit 2
}

# Run a command as the user that owns the cluster. From "/" so that the postgres user can
# always read its working directory (initdb fails when it cannot).
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

# True when a server is running on the data directory $1.
is_running() {
    [ -f "$1/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" status -D "$1" >/dev/null 2>&1
}

cmd_start() {
    [ $# -eq 2 ] || usage
    local dir=$1 port=$2

    if ! [[ $port =~ ^[1-9][0-9]{3,4}$ ]] || ((port < 1024 || port > 65535)); then
        die "port must be a number from 1024 to 65535, not '$port'"
    fi
    [[ $PG_USER =~ ^[a-z_][a-z0-9_]*$ && $PG_DB =~ ^[a-z_][a-z0-9_]*$ ]] ||
        die "KEFU_PG_USER and KEFU_PG_DB must be plain lower-case names"
    [ -x "$PG_BIN/initdb" ] ||
        die "no $PG_BIN/initdb: install PostgreSQL 15 (apt-get install postgresql)"

    # <dir> as an absolute path: it is also the unix socket directory.
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    local data=$dir/data
    # A unix socket path may be at most 107 bytes long.
    ((${#dir} + ${#port} + 10 <= 107)) ||
        die "'$dir' is too long for a unix socket directory: use a shorter path"

    if [ "$(id -u)" -eq 0 ]; then
        getent passwd postgres >/dev/null || die "there is no 'postgres' user to run the server"
        chown postgres:postgres "$dir"
    fi
    chmod 700 "$dir"
    as_pg test -w "$dir" ||
        die "the server's user cannot write to $dir (is one of its parent directories closed?)"

    if is_running "$data"; then
        local running_port
        running_port=$(sed -n 4p "$data/postmaster.pid")
        [ "$running_port" = "$port" ] ||
            die "the cluster in $dir is already running, on port $running_port, not $port"
        log "cluster in $dir is already running on port $port"
    else
        # Something else on the port would make the server fail with a less clear message.
        if (: </dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
            die "port $port on 127.0.0.1 is already in use: pick another one"
        fi

        if [ ! -f "$data/PG_VERSION" ]; then
            log "creating a cluster in $data"
            as_pg "$PG_BIN/initdb" --pgdata="$data" --username=postgres --auth=trust \
                --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
                { cat "$dir/initdb.log" >&2; die "initdb failed"; }

            # Loopback only, socket in <dir>, and no durability: the data is thrown away.
            cat >>"$data/postgresql.conf" <<EOF

# --- added by .ci/postgres.sh: a throwaway test cluster ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
            # Trust everyone, but only over the unix socket and IPv4 loopback.
            cat >"$data/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
EOF
        fi

        log "starting PostgreSQL on 127.0.0.1:$port (log: $dir/postgres.log)"
        as_pg "$PG_BIN/pg_ctl" start --pgdata="$data" --log="$dir/postgres.log" \
            --options="-p $port" --wait --timeout=60 --silent ||
            { tail -n 30 "$dir/postgres.log" >&2 || true; die "the server did not start"; }
    fi

    # The role and the database the tests use (only if they are missing, so start can re-run).
    log "making sure role '$PG_USER' and database '$PG_DB' exist"
    "$PG_BIN/psql" --no-psqlrc --quiet --host="$dir" --port="$port" --username=postgres \
        --dbname=postgres -v ON_ERROR_STOP=1 -v user="$PG_USER" -v db="$PG_DB" >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN CREATEDB', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL

    # The URL, for SQLAlchemy with the psycopg (3) driver.
    echo "postgresql+psycopg://$PG_USER@127.0.0.1:$port/$PG_DB"
}

cmd_stop() {
    [ $# -eq 1 ] || usage
    local data=$1/data

    if ! is_running "$data"; then
        log "no cluster running in $1"
        return 0
    fi
    # "fast" aborts open sessions (a test that hung keeps its connection open); if even that
    # does not finish in time, "immediate" kills the server outright.
    as_pg "$PG_BIN/pg_ctl" stop --pgdata="$data" --mode=fast --wait --timeout=60 --silent ||
        as_pg "$PG_BIN/pg_ctl" stop --pgdata="$data" --mode=immediate --wait --timeout=30 --silent
}

case ${1:-} in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    *) usage ;;
esac
