#!/usr/bin/env bash
# ops/stack.sh: the private local service stack for heartlog (see DESIGN.md, "Local stack").
#
# Everything lives under var/ at the repository root, on project-specific loopback ports, so
# the stack never collides with (or depends on) services that happen to run on the machine:
#
#   postgres   Postgres 15, data in var/postgres, 127.0.0.1:55432, user "heartlog", trust auth;
#              the catalog database "heartlog" and shard databases heartlog_shard_1, _2
#   redis      Redis (stand-in for SSDB), var/redis, 127.0.0.1:56379, no persistence
#   versitygw  S3 gateway (posix backend), var/s3 + var/s3-versions, 127.0.0.1:57070,
#              buckets "heartlog" (primary) and "heartlog-backup" (versioned backup)
#
# NATS is embedded in `heartlog dev` and is not started here; var/env only points at it.
# Run `ops/stack.sh help` for the subcommands and the environment variables it honours.
set -euo pipefail

# --- Paths and constants ----------------------------------------------------------------------

# Absolute repository root, derived from this script's location so any cwd works.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VAR="$ROOT/var"
LOGDIR="$VAR/log"
RUNDIR="$VAR/run"
TOOLS_BIN="$ROOT/.tools/bin"
ENV_FILE="$VAR/env"
LOCK_FILE="$VAR/.stack.lock"

PG_BIN="${HEARTLOG_STACK_PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_PKG="postgresql-15"
PG_PORT=55432
PG_DATA="$VAR/postgres"
PG_LOG="$LOGDIR/postgres.log"
PG_SYSUSER="postgres" # Postgres refuses to run as root; as root we run it as this user.
PG_URL_LOCAL="postgres://heartlog@127.0.0.1:${PG_PORT}/heartlog?sslmode=disable"
# The day partitions live on shard databases beside the catalog "heartlog" (DESIGN.md,
# "Postgres"): heartlog_shard_1 .. heartlog_shard_N in the same local server.
PG_SHARDS="${HEARTLOG_STACK_SHARDS:-2}"
pg_shard_urls() {
  local i urls=""
  for ((i = 1; i <= PG_SHARDS; i++)); do
    urls+="${urls:+,}postgres://heartlog@127.0.0.1:${PG_PORT}/heartlog_shard_${i}?sslmode=disable"
  done
  printf '%s' "$urls"
}

CHROMIUM_BIN="/usr/bin/chromium" # Debian's package "chromium"; the browser test and bench use it

REDIS_PORT=56379
REDIS_DIR="$VAR/redis"
REDIS_CONF="$REDIS_DIR/redis.conf"
REDIS_PID="$RUNDIR/redis.pid"
REDIS_LOG="$LOGDIR/redis.log"
CACHE_URL_LOCAL="redis://127.0.0.1:${REDIS_PORT}/0"

VGW_VERSION="v1.8.0"
VGW_MODULE="github.com/versity/versitygw"
VGW_BIN="$TOOLS_BIN/versitygw"
S3_PORT=57070
S3_DIR="$VAR/s3"
S3_VERSIONS_DIR="$VAR/s3-versions"
VGW_PID="$RUNDIR/versitygw.pid"
VGW_LOG="$LOGDIR/versitygw.log"
S3_ENDPOINT_LOCAL="http://127.0.0.1:${S3_PORT}"
S3_REGION="us-east-1"
S3_ACCESS_KEY="heartlog"            # local-only credentials, not a secret
S3_SECRET_KEY="heartlog-secret"
S3_BUCKET_PRIMARY="heartlog"
S3_BUCKET_BACKUP="heartlog-backup"

NATS_URL_LOCAL="nats://127.0.0.1:54222"
NATS_STORE_DIR="$VAR/nats"
HTTP_ADDR_LOCAL="127.0.0.1:8080"

TIMEOUT="${HEARTLOG_STACK_TIMEOUT:-60}"  # seconds to wait for each service to become ready
TAG="${HEARTLOG_STACK_TAG:-run}"

# --- Small helpers ----------------------------------------------------------------------------

log() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# Print the last lines of a log file to help diagnose a failed start.
show_log_tail() {
  if [ -r "$1" ]; then
    log "last lines of $1:"
    tail -n 20 "$1" | sed 's/^/    /' >&2
  fi
}

# Single-quote a value for a POSIX shell file.
shq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# True if something accepts TCP connections on 127.0.0.1:$1 (bash /dev/tcp, no extra tools).
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True if process $1 exists and is not a zombie (an exited daemon may linger as a zombie until
# its parent, often init, reaps it).
pid_alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }" # the state letter follows the ")" closing the command name
  [ "${stat:0:1}" != "Z" ]
}

# Print the pid stored in file $1 if that process is alive and its command name is $2.
live_pid_from_file() {
  local file="$1" comm="$2" pid
  [ -r "$file" ] || return 1
  pid="$(head -n 1 "$file" 2>/dev/null | tr -dc '0-9')"
  [ -n "$pid" ] && pid_alive "$pid" || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 1
  printf '%s\n' "$pid"
}

# Wait until pid $1 has exited, up to $2 seconds.
wait_pid_gone() {
  local pid="$1" limit="$2" i=0
  while pid_alive "$pid" && [ "$i" -lt $((limit * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  ! pid_alive "$pid"
}

# Run a Postgres binary as the right user: the postgres system user when we are root (initdb,
# pg_ctl and postgres all refuse to run as root), ourselves otherwise. cd / first so the tools
# do not complain about a cwd the postgres user cannot read.
as_pg() {
  if is_root; then
    (cd / && runuser -u "$PG_SYSUSER" -- "$@")
  else
    (cd / && "$@")
  fi
}

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go
  elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
  else return 1
  fi
}

# Serialise up/down so two concurrent invocations (e.g. `make run` and `make test`) do not
# race each other on the same var/ directory. The lock is held on fd 9 until this script exits;
# every daemon we launch gets `9>&-` so it does not inherit (and keep holding) the lock.
take_lock() {
  mkdir -p "$VAR"
  # A go.mod makes var/ a module of its own, so `go test ./...` never walks
  # into the stack's data (which the S3 gateway changes while tests run).
  [ -f "$VAR/go.mod" ] || printf 'module heartlog/var\n\n// The local stack'"'"'s data: not Go code.\n' >"$VAR/go.mod"
  exec 9>"$LOCK_FILE"
  flock -w 300 9 || die "could not lock $LOCK_FILE within 300s (another ops/stack.sh running?)"
}

# --- Overrides --------------------------------------------------------------------------------
#
# If a service's URL is already set in the environment (to something other than the local
# default), the user points at a real deployment: we do not start that local service and keep
# their values in var/env. A value equal to the local default (e.g. after `. var/env`) is not an
# override.

pg_overridden()     { [ -n "${HEARTLOG_POSTGRES_URL:-}" ] && [ "$HEARTLOG_POSTGRES_URL" != "$PG_URL_LOCAL" ]; }
redis_overridden()  { [ -n "${HEARTLOG_CACHE_URL:-}" ] && [ "$HEARTLOG_CACHE_URL" != "$CACHE_URL_LOCAL" ]; }
s3_overridden()     { [ -n "${HEARTLOG_S3_ENDPOINT:-}" ] && [ "$HEARTLOG_S3_ENDPOINT" != "$S3_ENDPOINT_LOCAL" ]; }
backup_overridden() { [ -n "${HEARTLOG_BACKUP_S3_ENDPOINT:-}" ] && [ "$HEARTLOG_BACKUP_S3_ENDPOINT" != "$S3_ENDPOINT_LOCAL" ]; }
nats_overridden()   { [ -n "${HEARTLOG_NATS_URL:-}" ] && [ "$HEARTLOG_NATS_URL" != "$NATS_URL_LOCAL" ]; }
# versitygw serves both the primary and the backup bucket; it is needed unless both are external.
vgw_overridden()    { s3_overridden && backup_overridden; }

# --- install ----------------------------------------------------------------------------------

cmd_install() {
  local missing=()
  [ -x "$PG_BIN/postgres" ] && [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] || missing+=("$PG_PKG")
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  # Debian's Chromium for the dashboard's browser test and benchmark (driven by chromedp); test
  # tools never download a browser of their own.
  [ -x "$CHROMIUM_BIN" ] || missing+=(chromium)
  # Node and npm for `make web-check` (part of `make test`), which rebuilds the committed
  # bundle to prove it current; `make run` needs neither. Tested with Node 20; Debian 12's
  # own nodejs is 18, below what protoc-gen-es declares (engines: node >= 22, though it runs
  # on 20): install a newer Node first where that matters.
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)

  if [ "${#missing[@]}" -gt 0 ]; then
    if is_root; then
      log "installing with apt-get: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update
      # --no-upgrade: never upgrade a package that is somehow already installed.
      apt-get install -y --no-install-recommends --no-upgrade "${missing[@]}"
    else
      log "missing system packages; install them as root, then re-run this command:"
      printf '    sudo apt-get update && sudo apt-get install -y %s\n' "${missing[*]}" >&2
      exit 1
    fi
  fi

  # versitygw is not packaged; build the pinned version into .tools/bin (gitignored).
  local go have=""
  go="$(find_go)" || die "Go toolchain not found (looked on PATH and in /usr/local/go/bin); it is needed to install versitygw"
  if [ -x "$VGW_BIN" ]; then
    have="$("$go" version -m "$VGW_BIN" 2>/dev/null | awk -v m="$VGW_MODULE" '$1 == "mod" && $2 == m { print $3 }')"
  fi
  if [ "$have" != "$VGW_VERSION" ]; then
    log "installing versitygw $VGW_VERSION into $TOOLS_BIN (go install, takes a minute)"
    mkdir -p "$TOOLS_BIN"
    GOBIN="$TOOLS_BIN" "$go" install "$VGW_MODULE/cmd/versitygw@$VGW_VERSION"
  fi
  log "install: all tools present (postgres: $PG_BIN, chromium: $CHROMIUM_BIN, node $(node --version), versitygw $VGW_VERSION: $VGW_BIN)"
}

# --- Postgres ---------------------------------------------------------------------------------

pg_pid() { live_pid_from_file "$PG_DATA/postmaster.pid" postgres; }
pg_running() { pg_pid >/dev/null; }

# Unix socket directory: var/run/postgres, unless the resulting socket path would exceed the
# kernel's sun_path limit (107 bytes), in which case a per-checkout directory under /tmp is used.
pg_socket_dir() {
  local dir="$RUNDIR/postgres"
  if [ "${#dir}" -gt 90 ]; then
    dir="/tmp/heartlog-pg-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
  fi
  printf '%s\n' "$dir"
}

# When root: make sure the postgres system user exists and can reach var/ (every ancestor
# directory needs the execute bit for "other", which is all that is added, with a notice).
pg_prepare_root() {
  is_root || return 0
  if ! id -u "$PG_SYSUSER" >/dev/null 2>&1; then
    log "creating system user $PG_SYSUSER"
    useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
      --shell /usr/sbin/nologin "$PG_SYSUSER"
  fi
  # Walk from / down to var/ (top-down, so a blocked ancestor does not hide its children),
  # then var/log and var/run, which hold the postgres log file and socket directory.
  local d path="" dirs=() parts=()
  IFS=/ read -r -a parts <<<"${VAR#/}"
  dirs+=(/)
  for d in "${parts[@]}"; do path="$path/$d"; dirs+=("$path"); done
  dirs+=("$LOGDIR" "$RUNDIR")
  for d in "${dirs[@]}"; do
    if ! runuser -u "$PG_SYSUSER" -- test -x "$d"; then
      log "making $d traversable (chmod o+x) so the $PG_SYSUSER user can reach var/postgres"
      chmod o+x "$d"
    fi
  done
}

pg_chown() { if is_root; then chown "$@"; fi; }

# Write a file inside the data directory (owned by the postgres user when root).
pg_write_file() {
  cat >"$1"
  pg_chown "$PG_SYSUSER:" "$1"
  chmod 600 "$1"
}

pg_initdb() {
  [ -f "$PG_DATA/PG_VERSION" ] && return 0
  log "initialising Postgres cluster in $PG_DATA"
  mkdir -p "$PG_DATA"
  chmod 700 "$PG_DATA"
  pg_chown -R "$PG_SYSUSER:" "$PG_DATA"
  # Superuser "heartlog", trust auth; only loopback is reachable (listen_addresses below).
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U heartlog --auth=trust --encoding=UTF8 --locale=C >/dev/null \
    || die "initdb failed for $PG_DATA"
  pg_write_file "$PG_DATA/pg_hba.conf" <<'EOF'
# heartlog local stack: trust auth, unix socket and loopback only.
local   all          all                 trust
host    all          all   127.0.0.1/32  trust
host    all          all   ::1/128       trust
local   replication  all                 trust
host    replication  all   127.0.0.1/32  trust
host    replication  all   ::1/128       trust
EOF
  # Our settings live in heartlog.conf, regenerated on every start (see pg_start).
  printf "\n# heartlog local stack settings (written by ops/stack.sh on every start)\ninclude_if_exists = 'heartlog.conf'\n" \
    >>"$PG_DATA/postgresql.conf"
}

pg_start() {
  [ -x "$PG_BIN/pg_ctl" ] || die "Postgres binaries not found in $PG_BIN; run: ops/stack.sh install"
  mkdir -p "$LOGDIR" "$RUNDIR"
  pg_prepare_root
  if is_root && [ -d "$PG_DATA" ] && [ "$(stat -c %U "$PG_DATA")" != "$PG_SYSUSER" ]; then
    chown -R "$PG_SYSUSER:" "$PG_DATA"
  fi
  pg_initdb

  local sock
  sock="$(pg_socket_dir)"
  mkdir -p "$sock"
  pg_chown "$PG_SYSUSER:" "$sock"
  chmod 755 "$sock"
  touch "$PG_LOG"
  pg_chown "$PG_SYSUSER:" "$PG_LOG"

  # fsync stays on (it is the real service) unless HEARTLOG_STACK_PG_FAST=1 (used by make test).
  local durability="fsync = on
synchronous_commit = on
full_page_writes = on"
  if [ "${HEARTLOG_STACK_PG_FAST:-0}" = "1" ]; then
    log "postgres: HEARTLOG_STACK_PG_FAST=1: fsync, synchronous_commit and full_page_writes off"
    durability="fsync = off
synchronous_commit = off
full_page_writes = off"
  fi
  pg_write_file "$PG_DATA/heartlog.conf" <<EOF
# Written by ops/stack.sh on every start; edits are lost.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '${sock//\'/\'\'}'
max_connections = 200
$durability
EOF

  log "starting postgres on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
  # 9>&-: the daemon must not inherit the stack lock (see take_lock), or it would hold it forever.
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" start >/dev/null 9>&-; then
    show_log_tail "$PG_LOG"
    die "postgres did not start within ${TIMEOUT}s; see $PG_LOG"
  fi
  local i=0
  until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; do
    i=$((i + 1))
    if [ "$i" -gt $((TIMEOUT * 5)) ]; then
      show_log_tail "$PG_LOG"
      die "postgres is not accepting connections on 127.0.0.1:$PG_PORT after ${TIMEOUT}s; see $PG_LOG"
    fi
    sleep 0.2
  done
}

# Create the heartlog database if absent (idempotent; also when postgres was already running).
pg_ensure_db() {
  local psql=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U heartlog -d postgres)
  if [ "$("${psql[@]}" -tAc "select 1 from pg_database where datname = 'heartlog'")" != "1" ]; then
    log "postgres: creating database heartlog"
    "${psql[@]}" -c 'create database heartlog' || die "could not create database heartlog; see $PG_LOG"
  fi
  local i db
  for ((i = 1; i <= PG_SHARDS; i++)); do
    db="heartlog_shard_${i}"
    if [ "$("${psql[@]}" -tAc "select 1 from pg_database where datname = '$db'")" != "1" ]; then
      log "postgres: creating shard database $db"
      "${psql[@]}" -c "create database $db" || die "could not create database $db; see $PG_LOG"
    fi
  done
}

pg_stop() {
  log "stopping postgres"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$TIMEOUT" stop >/dev/null \
    || die "pg_ctl stop failed; see $PG_LOG"
}

# --- Redis ------------------------------------------------------------------------------------

redis_pid() { live_pid_from_file "$REDIS_PID" redis-server; }
redis_running() { redis_pid >/dev/null; }

redis_start() {
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found; run: ops/stack.sh install"
  mkdir -p "$REDIS_DIR" "$LOGDIR" "$RUNDIR"
  # A config file (rather than command-line flags) keeps paths with spaces safe.
  cat >"$REDIS_CONF" <<EOF
# Written by ops/stack.sh on every start; edits are lost.
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
dir "$REDIS_DIR"
save ""
appendonly no
daemonize yes
pidfile "$REDIS_PID"
logfile "$REDIS_LOG"
EOF
  log "starting redis on 127.0.0.1:$REDIS_PORT (log: $REDIS_LOG)"
  redis-server "$REDIS_CONF" 9>&- || { show_log_tail "$REDIS_LOG"; die "redis-server failed to start; see $REDIS_LOG"; }
  local i=0
  until [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ] && redis_running; do
    i=$((i + 1))
    if [ "$i" -gt $((TIMEOUT * 5)) ]; then
      show_log_tail "$REDIS_LOG"
      die "redis did not answer PING on 127.0.0.1:$REDIS_PORT within ${TIMEOUT}s; see $REDIS_LOG"
    fi
    sleep 0.2
  done
}

redis_stop() {
  local pid
  pid="$(redis_pid)" || return 0
  log "stopping redis"
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  if ! wait_pid_gone "$pid" 15; then
    log "redis did not exit after SHUTDOWN; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 5 || true
  fi
  rm -f "$REDIS_PID"
}

# --- versitygw (S3) ---------------------------------------------------------------------------

vgw_pid() { live_pid_from_file "$VGW_PID" versitygw; }
vgw_running() { vgw_pid >/dev/null; }

vgw_start() {
  [ -x "$VGW_BIN" ] || die "versitygw not found at $VGW_BIN; run: ops/stack.sh install"
  mkdir -p "$S3_DIR" "$S3_VERSIONS_DIR" "$LOGDIR" "$RUNDIR"
  log "starting versitygw on 127.0.0.1:$S3_PORT (log: $VGW_LOG)"
  printf '=== %s: started by ops/stack.sh\n' "$(date -u +%FT%TZ)" >>"$VGW_LOG"
  # versitygw does not daemonise: run it in its own session (so Ctrl-C in the terminal that
  # ran `make` does not kill it), stdio to the log, and record the exec'd pid.
  # Global flags go before the backend subcommand; posix takes the root dir as its argument.
  # shellcheck disable=SC2016 # $$ and $@ are expanded by the inner bash, on purpose
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' versitygw-launcher "$VGW_PID" \
    "$VGW_BIN" \
    --port "127.0.0.1:$S3_PORT" \
    --access "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY" \
    --region "$S3_REGION" \
    --health /health \
    --quiet \
    --keep-alive \
    posix --versioning-dir "$S3_VERSIONS_DIR" "$S3_DIR" \
    >>"$VGW_LOG" 2>&1 </dev/null 9>&- &
  local i=0
  until curl -fsS -o /dev/null "$S3_ENDPOINT_LOCAL/health" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt $((TIMEOUT * 5)) ] || { [ "$i" -gt 10 ] && ! vgw_running; }; then
      show_log_tail "$VGW_LOG"
      die "versitygw did not become ready on 127.0.0.1:$S3_PORT within ${TIMEOUT}s; see $VGW_LOG"
    fi
    sleep 0.2
  done
}

vgw_stop() {
  local pid
  pid="$(vgw_pid)" || return 0
  log "stopping versitygw"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_pid_gone "$pid" 15; then
    log "versitygw did not exit after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 5 || true
  fi
  rm -f "$VGW_PID"
}

# Signed S3 request with curl. Usage: s3_curl METHOD PATH_AND_QUERY [BODY]
# Prints the response body, then a final line with the HTTP status code.
# Quirks of curl 7.88 --aws-sigv4 (Debian 12):
#  - it does not send x-amz-content-sha256, which S3 servers require: we send it ourselves
#    (curl signs every x-amz-* header it is given);
#  - a bare sub-resource such as `?versioning` is canonicalised differently by curl and by the
#    server (signature mismatch): always write it as `?versioning=`.
s3_curl() {
  local method="$1" path="$2" body="${3:-}" sha
  sha="$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)"
  local args=(-sS -w '\n%{http_code}')
  if [ "$method" = HEAD ]; then
    args+=(-I -o /dev/null) # -X HEAD would make curl wait for a body that never comes
  else
    args+=(-X "$method")
  fi
  args+=(--aws-sigv4 "aws:amz:${S3_REGION}:s3" --user "${S3_ACCESS_KEY}:${S3_SECRET_KEY}"
    -H "x-amz-content-sha256: $sha")
  if [ -n "$body" ]; then
    args+=(-H 'Content-Type: application/xml' --data-binary "$body")
  fi
  curl "${args[@]}" "${S3_ENDPOINT_LOCAL}${path}"
}

s3_status() { tail -n 1 <<<"$1"; }

# Create a bucket if absent (HEAD 404 -> PUT), idempotently.
s3_ensure_bucket() {
  local bucket="$1" out code
  out="$(s3_curl HEAD "/$bucket")" || die "S3 HEAD /$bucket failed; see $VGW_LOG"
  code="$(s3_status "$out")"
  case "$code" in
    200) return 0 ;;
    404) ;;
    *) die "S3 HEAD /$bucket answered HTTP $code; see $VGW_LOG" ;;
  esac
  log "s3: creating bucket $bucket"
  out="$(s3_curl PUT "/$bucket")" || die "S3 CreateBucket $bucket failed; see $VGW_LOG"
  code="$(s3_status "$out")"
  case "$code" in
    200) ;;
    409) grep -q BucketAlreadyOwnedByYou <<<"$out" || die "S3 CreateBucket $bucket: $out" ;;
    *) die "S3 CreateBucket $bucket answered HTTP $code: $out" ;;
  esac
}

# Turn versioning on for a bucket (if it is not already) and verify it with GetBucketVersioning.
s3_ensure_versioning() {
  local bucket="$1" out code
  out="$(s3_curl GET "/$bucket?versioning=")" || die "S3 GetBucketVersioning $bucket failed; see $VGW_LOG"
  if [ "$(s3_status "$out")" = "200" ] && grep -q '<Status>Enabled</Status>' <<<"$out"; then
    return 0
  fi
  log "s3: enabling versioning on bucket $bucket"
  out="$(s3_curl PUT "/$bucket?versioning=" \
    '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>')" \
    || die "S3 PutBucketVersioning $bucket failed; see $VGW_LOG"
  code="$(s3_status "$out")"
  [ "$code" = "200" ] || die "S3 PutBucketVersioning $bucket answered HTTP $code: $out"
  out="$(s3_curl GET "/$bucket?versioning=")" || die "S3 GetBucketVersioning $bucket failed; see $VGW_LOG"
  grep -q '<Status>Enabled</Status>' <<<"$out" \
    || die "versioning is not enabled on $bucket after PutBucketVersioning (was versitygw started with --versioning-dir?): $out"
}

# --- started-by records -----------------------------------------------------------------------
#
# var/started-by-<tag> lists "<service> <pid>" for each service an `up` with that tag started.
# `down --only-started <tag>` stops a service only if it still runs with the recorded pid, so a
# service restarted since by someone else is left alone.

valid_tag() { [[ "$1" =~ ^[A-Za-z0-9_.-]+$ ]] || die "invalid tag '$1' (use letters, digits, . _ -)"; }

svc_pid() {
  case "$1" in
    postgres) pg_pid ;;
    redis) redis_pid ;;
    versitygw) vgw_pid ;;
    *) return 1 ;;
  esac
}

record_started() {
  local svc="$1" pid
  pid="$(svc_pid "$svc")" || die "$svc started but its pid could not be determined"
  printf '%s %s\n' "$svc" "$pid" >>"$VAR/started-by-$TAG"
}

svc_stop() {
  case "$1" in
    postgres) pg_running && pg_stop ;;
    redis) redis_stop ;;
    versitygw) vgw_stop ;;
  esac
  return 0
}

# --- var/env ----------------------------------------------------------------------------------

# Emit `export NAME='value'`: the environment's value for an overridden group, else the local
# default. For an overridden group (use_env=1) variables the user did not set are left out, so
# e.g. a real S3 endpoint is not paired with the local credentials.
env_line() {
  local name="$1" default="$2" use_env="$3"
  if [ "$use_env" = "1" ]; then
    if [ -n "${!name+x}" ]; then
      printf 'export %s=%s\n' "$name" "$(shq "${!name}")"
    fi
  else
    printf 'export %s=%s\n' "$name" "$(shq "$default")"
  fi
}

write_env() {
  local pg=0 redis=0 s3=0 backup=0 nats=0 http=0 tmp
  pg_overridden && pg=1
  redis_overridden && redis=1
  s3_overridden && s3=1
  backup_overridden && backup=1
  nats_overridden && nats=1
  [ -n "${HEARTLOG_HTTP_ADDR:-}" ] && http=1
  tmp="$(mktemp "$VAR/.env.XXXXXX")"
  {
    echo "# heartlog local stack environment, written by ops/stack.sh up. Use: . $ENV_FILE"
    echo "# Values already set in the environment at \`up\` time (a real deployment) are kept."
    env_line HEARTLOG_POSTGRES_URL "$PG_URL_LOCAL" "$pg"
    env_line HEARTLOG_POSTGRES_SHARD_URLS "$(pg_shard_urls)" "$pg"
    env_line HEARTLOG_NATS_URL "$NATS_URL_LOCAL" "$nats"
    env_line HEARTLOG_NATS_STORE_DIR "$NATS_STORE_DIR" "$nats"
    env_line HEARTLOG_HTTP_ADDR "$HTTP_ADDR_LOCAL" "$http"
    env_line HEARTLOG_CACHE_URL "$CACHE_URL_LOCAL" "$redis"
    local prefix flag bucket
    for prefix in HEARTLOG_S3_ HEARTLOG_BACKUP_S3_; do
      if [ "$prefix" = HEARTLOG_S3_ ]; then flag=$s3 bucket=$S3_BUCKET_PRIMARY; else flag=$backup bucket=$S3_BUCKET_BACKUP; fi
      env_line "${prefix}ENDPOINT" "$S3_ENDPOINT_LOCAL" "$flag"
      env_line "${prefix}REGION" "$S3_REGION" "$flag"
      env_line "${prefix}BUCKET" "$bucket" "$flag"
      env_line "${prefix}ACCESS_KEY_ID" "$S3_ACCESS_KEY" "$flag"
      env_line "${prefix}SECRET_ACCESS_KEY" "$S3_SECRET_KEY" "$flag"
      env_line "${prefix}PATH_STYLE" "true" "$flag"
    done
    echo "# AWS_* variables are deliberately not exported. To inspect the local buckets with the aws cli:"
    echo "#   AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_REGION=$S3_REGION \\"
    echo "#     aws --endpoint-url $S3_ENDPOINT_LOCAL s3api get-bucket-versioning --bucket $S3_BUCKET_BACKUP"
  } >"$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$ENV_FILE"
}

# --- Subcommands ------------------------------------------------------------------------------

cmd_up() {
  valid_tag "$TAG"
  take_lock
  mkdir -p "$LOGDIR" "$RUNDIR" "$NATS_STORE_DIR"
  touch "$VAR/started-by-$TAG"

  # Postgres
  if pg_overridden; then
    log "postgres: HEARTLOG_POSTGRES_URL is set; not starting the local postgres"
  elif pg_running; then
    log "postgres: already running (pid $(pg_pid))"
    pg_ensure_db
  else
    port_open "$PG_PORT" && die "port $PG_PORT is in use by another process (not var/postgres); stop it or set HEARTLOG_POSTGRES_URL"
    pg_start
    record_started postgres
    pg_ensure_db
  fi

  # Redis
  if redis_overridden; then
    log "redis: HEARTLOG_CACHE_URL is set; not starting the local redis"
  elif redis_running; then
    log "redis: already running (pid $(redis_pid))"
  else
    port_open "$REDIS_PORT" && die "port $REDIS_PORT is in use by another process (not var/redis); stop it or set HEARTLOG_CACHE_URL"
    redis_start
    record_started redis
  fi

  # versitygw + buckets
  if vgw_overridden; then
    log "versitygw: HEARTLOG_S3_ENDPOINT and HEARTLOG_BACKUP_S3_ENDPOINT are set; not starting the local S3 gateway"
  else
    if vgw_running; then
      log "versitygw: already running (pid $(vgw_pid))"
    else
      port_open "$S3_PORT" && die "port $S3_PORT is in use by another process (not var/s3); stop it or set HEARTLOG_S3_ENDPOINT/HEARTLOG_BACKUP_S3_ENDPOINT"
      vgw_start
      record_started versitygw
    fi
    if ! s3_overridden; then s3_ensure_bucket "$S3_BUCKET_PRIMARY"; fi
    if ! backup_overridden; then
      s3_ensure_bucket "$S3_BUCKET_BACKUP"
      s3_ensure_versioning "$S3_BUCKET_BACKUP"
    fi
  fi

  write_env
  log "up: ready; environment in $ENV_FILE (tag '$TAG' started: $(cut -d' ' -f1 "$VAR/started-by-$TAG" | sort -u | tr '\n' ' '))"
}

cmd_down() {
  local only_tag=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --only-started) [ $# -ge 2 ] || die "--only-started needs a TAG"; only_tag="$2"; shift 2 ;;
      --only-started=*) only_tag="${1#*=}"; shift ;;
      *) die "down: unknown argument '$1' (usage: down [--only-started TAG])" ;;
    esac
  done
  [ -d "$VAR" ] || { log "down: nothing to do ($VAR does not exist)"; return 0; }
  take_lock

  if [ -z "$only_tag" ]; then
    # Stop everything we know of under var/, in reverse start order.
    local svc
    for svc in versitygw redis postgres; do svc_stop "$svc"; done
    rm -f "$VAR"/started-by-*
    log "down: all local services stopped"
    return 0
  fi

  valid_tag "$only_tag"
  local rec="$VAR/started-by-$only_tag"
  if [ ! -f "$rec" ]; then
    log "down: no record for tag '$only_tag' ($rec); nothing to stop"
    return 0
  fi
  local line svc pid cur lines=()
  # Reverse order of the record: last started, first stopped.
  mapfile -t lines < <(tac "$rec")
  for line in "${lines[@]}"; do
    read -r svc pid <<<"$line" || true
    [ -n "${svc:-}" ] || continue
    if cur="$(svc_pid "$svc")" && [ "$cur" = "$pid" ]; then
      svc_stop "$svc"
    else
      log "down: $svc (pid $pid, started by tag '$only_tag') is no longer running as that pid; leaving it alone"
    fi
  done
  rm -f "$rec"
  log "down: stopped what tag '$only_tag' started"
}

# Print "  [message]" if the given check succeeds.
note_if() { if "$1"; then printf '  [%s]' "$2"; fi; }

cmd_status() {
  local state
  if pg_running; then state="running (pid $(pg_pid))"; else state="stopped"; fi
  printf '%-10s %-22s 127.0.0.1:%-6s %s%s\n' postgres "$state" "$PG_PORT" "$PG_DATA" \
    "$(note_if pg_overridden 'HEARTLOG_POSTGRES_URL set: external')"
  if redis_running; then state="running (pid $(redis_pid))"; else state="stopped"; fi
  printf '%-10s %-22s 127.0.0.1:%-6s %s%s\n' redis "$state" "$REDIS_PORT" "$REDIS_DIR" \
    "$(note_if redis_overridden 'HEARTLOG_CACHE_URL set: external')"
  if vgw_running; then state="running (pid $(vgw_pid))"; else state="stopped"; fi
  printf '%-10s %-22s 127.0.0.1:%-6s %s%s\n' versitygw "$state" "$S3_PORT" "$S3_DIR (versions: $S3_VERSIONS_DIR)" \
    "$(note_if vgw_overridden 'HEARTLOG_S3_ENDPOINT/HEARTLOG_BACKUP_S3_ENDPOINT set: external')"
}

cmd_env() {
  printf '%s\n' "$ENV_FILE"
  [ -f "$ENV_FILE" ] || { log "$ENV_FILE does not exist yet; run: ops/stack.sh up"; exit 1; }
}

cmd_help() {
  cat <<EOF
Usage: ops/stack.sh COMMAND

The private local service stack for heartlog, under $VAR:
  postgres   Postgres 15   127.0.0.1:$PG_PORT   data var/postgres, user/db heartlog (trust auth)
  redis      Redis         127.0.0.1:$REDIS_PORT   var/redis, no persistence (stand-in for SSDB)
  versitygw  S3 gateway    127.0.0.1:$S3_PORT   var/s3 (+ var/s3-versions), buckets
                                                  $S3_BUCKET_PRIMARY and $S3_BUCKET_BACKUP (versioned)
NATS is embedded in \`heartlog dev\` ($NATS_URL_LOCAL); it is not started here.

Commands:
  install                    Install what is missing: $PG_PKG, redis-server, curl, chromium, nodejs and npm
                             (for the dashboard's browser test and benchmark, $CHROMIUM_BIN)
                             with apt-get when root (else print the apt-get command and exit 1),
                             and versitygw $VGW_VERSION into .tools/bin with go install.
  up                         Start whichever services are not running (idempotent), create the
                             buckets, enable versioning on $S3_BUCKET_BACKUP, write var/env and
                             record what this invocation started in var/started-by-<tag>.
  down [--only-started TAG]  Stop all local services, or only those recorded for TAG (and only
                             if still running with the recorded pid).
  status                     One line per service: state, port, data directory.
  env                        Print the path of var/env (use: . "\$(ops/stack.sh env)").
  help                       This text.

Environment:
  HEARTLOG_STACK_TAG=TAG        Tag for \`up\`'s record (default: run).
  HEARTLOG_STACK_PG_FAST=1      Start postgres with fsync, synchronous_commit and full_page_writes
                                off (tests only; has no effect if postgres is already running).
  HEARTLOG_STACK_TIMEOUT=SECS   How long to wait for each service to be ready (default: 60).
  HEARTLOG_STACK_SHARDS=N       Shard databases heartlog_shard_1..N created beside the catalog and
                                listed in var/env's HEARTLOG_POSTGRES_SHARD_URLS (default: 2;
                                0: the catalog holds the day partitions).
  HEARTLOG_STACK_PG_BIN=DIR     Postgres binaries (default: /usr/lib/postgresql/15/bin).
  HEARTLOG_POSTGRES_URL, HEARTLOG_CACHE_URL, HEARTLOG_S3_*, HEARTLOG_BACKUP_S3_*, HEARTLOG_NATS_*,
  HEARTLOG_HTTP_ADDR            If set at \`up\` time (to a non-local value), the corresponding local
                                service is not started and the given values are kept in var/env.

When run as root, Postgres runs as the '$PG_SYSUSER' system user (created if absent), which owns
var/postgres.
EOF
}

main() {
  local cmd="${1:-help}"
  [ $# -gt 0 ] && shift
  case "$cmd" in
    install) cmd_install "$@" ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    env) cmd_env "$@" ;;
    help | -h | --help) cmd_help ;;
    *) cmd_help >&2; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
