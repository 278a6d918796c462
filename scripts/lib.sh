# Helpers the project's scripts share. Sourcing this file only defines functions: it runs
# nothing, sets no variable and changes no shell option.

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# function_names: the binary of each function of template.yaml, one per line, as the emulator
# reads the template (`local-lambda functions`, built here if it is not). Run from the
# repository's root.
function_names() {
    "${CARGO:-cargo}" build --quiet -p local-lambda --bin local-lambda
    "${CARGO_TARGET_DIR:-target}/debug/local-lambda" functions --template template.yaml | cut -f1
}

# wait_for_url URL SECONDS [PID]: waits until URL answers with a 2xx, polling every 0.2 s. Fails
# after SECONDS, or as soon as process PID (the server that should answer) has exited.
wait_for_url() {
    local url="$1" seconds="$2" pid="${3:-}"
    local deadline=$((SECONDS + seconds))
    until curl -fs -o /dev/null "$url"; do
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            echo "wait_for_url: process $pid exited before $url answered" >&2
            return 1
        fi
        if ((SECONDS > deadline)); then
            echo "wait_for_url: $url did not answer within $seconds s" >&2
            return 1
        fi
        sleep 0.2
    done
}
