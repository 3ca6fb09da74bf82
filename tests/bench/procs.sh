# Sourced by the bench scripts: the servers they start, and waiting for them. Loopback only.
# The sourcing script sets ME (its name, for messages) and appends every PID it starts to PIDS.

PIDS=()

# Stops everything in PIDS: TERM, up to 5 s each to exit, then KILL.
stop_all() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
}

wait_port() { # PORT PID NAME
    for _ in $(seq 100); do
        if ! kill -0 "$2" 2>/dev/null; then echo "$ME: $3 exited during start-up" >&2; return 1; fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "$ME: $3 did not listen on 127.0.0.1:$1 within 10 s" >&2; return 1
}
