# Helpers to run a local PostgreSQL cluster from the installed server binaries.
# initdb and postgres refuse to run as root, so as root they run as the `postgres` user.
# Sourcing this file only defines functions (and sources lib.sh, which does the same).

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pg_bin_dir() {
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return
    fi
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [[ -z "$found" ]]; then
        echo "no PostgreSQL server binaries found (initdb not on PATH nor in /usr/lib/postgresql/*/bin)" >&2
        return 1
    fi
    echo "$found"
}

# pg_bin NAME: the path of a PostgreSQL program: beside the server binaries, else from PATH
# (the client tools may live in either place).
pg_bin() {
    local dir
    dir="$(pg_bin_dir)" || return 1
    if [[ -x "$dir/$1" ]]; then echo "$dir/$1"; else command -v "$1" || echo "$dir/$1"; fi
}

# Runs a server binary, as `postgres` when we are root. From `/`: the caller's working directory
# may be one `postgres` cannot enter (every path passed is absolute).
pg_as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# pg_owner_can_reach DIR: whether the server's user can enter DIR (every folder above it too).
pg_owner_can_reach() {
    pg_as_owner test -x "$1" 2>/dev/null
}

# A folder for throwaway server files (data, socket) that the server's user can reach:
# $TMPDIR when it can (a root's private TMPDIR is not), else /tmp.
pg_tmp_dir() {
    local dir="${TMPDIR:-/tmp}"
    if pg_owner_can_reach "$dir"; then echo "$dir"; else echo /tmp; fi
}

# pg_init DATA_DIR: a new cluster on loopback only. The superuser `postgres` is trusted (the
# harness and the tests administer with it); every other role must give its password, so a
# test of credentials (a rotated password, a secret's user) is checked by the server for real.
pg_init() {
    local data="$1"
    mkdir -p "$data"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres "$(dirname "$data")" "$data"
    fi
    chmod 700 "$data"
    pg_as_owner "$(pg_bin initdb)" -D "$data" -U postgres -A trust -E UTF8 --no-sync >/dev/null
    pg_as_owner tee "$data/pg_hba.conf" >/dev/null <<'HBA'
# TYPE  DATABASE  USER      ADDRESS       METHOD
local   all       postgres                trust
host    all       postgres  127.0.0.1/32  trust
host    all       postgres  ::1/128       trust
local   all       all                     scram-sha-256
host    all       all       127.0.0.1/32  scram-sha-256
host    all       all       ::1/128       scram-sha-256
HBA
}

# pg_start DATA_DIR PORT SOCKET_DIR LOG_FILE [EXTRA_SERVER_OPTIONS]: starts and waits until ready.
pg_start() {
    local data="$1" port="$2" socket_dir="$3" log="$4" extra="${5:-}"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres "$socket_dir"
        touch "$log" && chown postgres "$log"
    fi
    pg_as_owner "$(pg_bin pg_ctl)" -D "$data" -l "$log" -w -t 60 \
        -o "-p $port -k $socket_dir -c listen_addresses=127.0.0.1 -c max_connections=300 $extra" \
        start >/dev/null
}

# pg_stop DATA_DIR: fast shutdown (disconnects clients).
pg_stop() {
    pg_as_owner "$(pg_bin pg_ctl)" -D "$1" -m fast -w stop >/dev/null 2>&1
}

# pg_make_certs DIR: a certificate authority made for this run (DIR/ca.pem), a server
# certificate it signs for 127.0.0.1 and localhost (DIR/server.crt, DIR/server.key, readable by
# the server's user only), and a second, unrelated authority (DIR/wrong-ca.pem) that a test can
# offer to see an untrusted server refused. P-256 keys: quick to make and to handshake with.
pg_make_certs() {
    local dir="$1"
    mkdir -p "$dir"
    local authority
    for authority in ca wrong-ca; do
        openssl req -x509 -new -nodes -days 2 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
            -subj "/CN=auth-api test $authority $(date +%s)" -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$dir/$authority.key" -out "$dir/$authority.pem" 2>/dev/null
    done
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj "/CN=127.0.0.1" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
        >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
    rm -f "$dir/server.csr" "$dir/server.ext" "$dir/ca.key" "$dir/wrong-ca.key" "$dir/ca.srl"
    chmod 600 "$dir/server.key"
    chmod 644 "$dir/ca.pem" "$dir/wrong-ca.pem" "$dir/server.crt"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres "$dir" "$dir/server.key" "$dir/server.crt"
    fi
}

# pg_ssl_options DIR: the server options that turn TLS on with pg_make_certs's certificate.
pg_ssl_options() {
    echo "-c ssl=on -c ssl_cert_file=$1/server.crt -c ssl_key_file=$1/server.key"
}
