#!/usr/bin/env bash
# `make run` from a checkout inside a mode-700 folder (root's home is one, so is any `mktemp -d`).
# As root, PostgreSQL runs as the `postgres` user, which cannot enter such a folder: the cluster
# must live where it can, or make run must say at once what to do.
#
# Copies this checkout's tracked files (as a clone has them, with any uncommitted change) into a
# folder made by `mktemp -d`, points its target/ at this one's debug build (CARGO=true: nothing
# is rebuilt), starts `make run` on free ports, waits until GET /health answers 200 and a signup
# works, follows the signup's mail from .local/mail/ to a verified address, runs `make invoke` beside it (which must leave make run's PostgreSQL running), sends Ctrl-C, and checks that it shut down: the process group gone, the API and
# PostgreSQL stopped. Run after `cargo build --workspace --all-targets` (make test's build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/pg-lib.sh
source "$root/scripts/pg-lib.sh"

for binary in $(cd "$root" && function_names) db-migrate keygen local-lambda; do
    if [[ ! -x "$root/target/debug/$binary" ]]; then
        echo "private-clone: target/debug/$binary is missing: run cargo build --workspace --all-targets" >&2
        exit 1
    fi
done

private="$(mktemp -d "${TMPDIR:-/tmp}/auth-private.XXXXXX")"
chmod 700 "$private"
clone="$private/auth"
log="$private/run.log"
server=""
fail() {
    echo "private-clone: FAIL $*" >&2
    [[ -f "$log" ]] && sed 's/^/  | /' "$log" >&2
    exit 1
}
cleanup() {
    if [[ -n "$server" ]] && kill -0 "$server" 2>/dev/null; then
        kill -KILL -- "-$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    # The cluster make run kept for this clone, wherever dev-run put it.
    local data
    data="$(readlink -f "$clone/.local/pgdata" 2>/dev/null || true)"
    if [[ -n "$data" && -d "$data" ]]; then
        pg_stop "$data" || true
        case "$data" in
            "$clone"/*) ;;
            *) rm -rf "$(dirname "$data")" ;;
        esac
    fi
    rm -rf "$private"
}
trap cleanup EXIT

mkdir "$clone"
git -C "$root" ls-files -z | (cd "$root" && xargs -0 cp --parents -t "$clone")
ln -s "$root/target" "$clone/target"
# The venv make test installed (moto, which make run starts for its local SES); -o below tells
# make it is up to date, whatever the copied requirements file's time.
ln -s "$root/.venv" "$clone/.venv"

port="$(free_port)"
pg_port="$(free_port)"
base="http://127.0.0.1:$port"
# A process group of its own, so that Ctrl-C reaches every process as it would from a terminal.
(cd "$clone" && PORT="$port" PG_PORT="$pg_port" CARGO=true exec env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS setsid make -o .venv/.installed run) >"$log" 2>&1 </dev/null &
server=$!

deadline=$((SECONDS + 120))
until [[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/health")" == 200 ]]; do
    kill -0 "$server" 2>/dev/null || fail "make run exited before GET /health answered 200"
    ((SECONDS < deadline)) || fail "GET /health did not answer 200 within 120 s"
    sleep 0.2
done
echo "ok   GET /health answers 200 from a clone in a mode-700 folder"

status="$(curl -s -o "$private/signup.json" -w '%{http_code}' -X POST "$base/auth/signup" \
    -H 'content-type: application/json' \
    -d '{"email":"private-clone@example.com","password":"correct horse battery staple"}')"
[[ "$status" == 201 ]] || fail "signup answered $status: $(cat "$private/signup.json")"
echo "ok   a signup works"

# The signup's verification mail, as a developer finds it: an .eml in .local/mail/ whose link
# opens the local stand-in page, and whose token verifies the address.
eml="$(ls "$clone/.local/mail/"*.eml 2>/dev/null | tail -1 || true)"
[[ -n "$eml" ]] || fail "make run wrote no .eml to .local/mail/ for the signup's verification mail"
# The message is MIME (its bodies may be quoted-printable): read as a mail client reads it.
link="$(cd "$clone" && scripts/mail-link "$eml")"
[[ -n "$link" ]] || fail "the mail has no verification link: $(cat "$eml")"
[[ "$(curl -s -o /dev/null -w '%{http_code}' "$link")" == 200 ]] || fail "the mail's link $link opens no page"
token="${link##*token=}"
status="$(curl -s -o "$private/verify.json" -w '%{http_code}' -X POST "$base/auth/verify-email" \
    -H 'content-type: application/json' -d "{\"token\":\"$token\"}")"
[[ "$status" == 200 ]] || fail "verifying with the mail's token answered $status: $(cat "$private/verify.json")"
echo "ok   the signup's mail is in .local/mail/, its link opens the local page, its token verifies"

data="$(readlink -f "$clone/.local/pgdata")"
[[ -f "$data/postmaster.pid" ]] || fail ".local/pgdata ($data) is not the running cluster"

# `make invoke` while `make run` serves: it uses the running cluster and must leave it running.
# The function: the first of the template whose sample event a front door sends as it is (no
# placeholder to fill).
invoke_log="$private/invoke.log"
function="$(cd "$root" && for name in $(function_names); do
    if grep -q routeKey "events/$name.json" && ! grep -q REPLACE_WITH_ "events/$name.json"; then
        echo "$name"
        break
    fi
done)"
[[ -n "$function" ]] || fail "no function's sample event needs no filling"
(cd "$clone" && PG_PORT="$pg_port" CARGO=true env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS \
    make -o .venv/.installed invoke FN="$function" EVENT="events/$function.json") >"$invoke_log" 2>&1 </dev/null ||
    fail "make invoke failed beside make run: $(cat "$invoke_log")"
grep -q '"statusCode": *200' "$invoke_log" || fail "make invoke did not print a 200: $(cat "$invoke_log")"
grep -q "stopping PostgreSQL" "$invoke_log" && fail "make invoke stopped the PostgreSQL make run started"
[[ -f "$data/postmaster.pid" ]] || fail "PostgreSQL is gone after make invoke"
[[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/health")" == 200 ]] ||
    fail "GET /health no longer answers 200 after make invoke"
echo "ok   make invoke beside make run leaves its PostgreSQL running"

kill -INT -- "-$server"
deadline=$((SECONDS + 60))
while kill -0 -- "-$server" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "make run still running 60 s after Ctrl-C"
    sleep 0.2
done
wait "$server" 2>/dev/null || true
echo "ok   Ctrl-C ends every process of make run"

curl -s -o /dev/null "$base/health" && fail "the API still answers after Ctrl-C"
[[ ! -e "$data/postmaster.pid" ]] || fail "PostgreSQL still runs on $data after Ctrl-C"
grep -q "stopping PostgreSQL" "$log" || fail "dev-run did not stop PostgreSQL"
echo "ok   the API and PostgreSQL are stopped"
echo "private-clone: passed"
