# Shell functions shared by the test-bed scripts (sourced, not run).

# pid_of PIDFILE NAME: print the pid in PIDFILE if it is a live (not zombie)
# process called NAME; a killed daemon may stay a zombie a while (pid 1
# reaps lazily)
pid_of() {
    local pid
    [[ -s $1 ]] || return 1
    pid="$(tr -dc '0-9' 2>/dev/null <"$1")" || return 1
    [[ -n $pid ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null || true) == "$2" ]] || return 1
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true) != Z ]] || return 1
    echo "$pid"
}

# answers: the libvirtd at $URI answers a call
answers() { timeout 10 virsh -c "$URI" list >/dev/null 2>&1; }

# wait_answers SECONDS: wait until the libvirtd at $URI answers
wait_answers() {
    local deadline=$((SECONDS + $1))
    until answers; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

TESTBED_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# under_reaper REAPER_PIDFILE DAEMON_PIDFILE CMD...: run a self-daemonising
# start command (libvirtd -d, virtlogd -d) under tools/testbed/subreaper.py,
# so the daemon and the orphans it leaves (QEMU) are reaped at once instead
# of by PID 1, which reaps lazily (libvirt's destroy waits for the reaping).
# TESTBED_SUBREAPER=0 runs CMD directly (benchmarks/destroy_latency.py
# --compare measures the difference).
under_reaper() {
    local reaper_pidfile=$1 daemon_pidfile=$2
    shift 2
    if [[ ${TESTBED_SUBREAPER:-1} == 0 ]]; then
        rm -f "$reaper_pidfile"
        "$@"
        return
    fi
    python3 "$TESTBED_DIR/subreaper.py" --pid-file "$reaper_pidfile" \
        --daemon-pid-file "$daemon_pidfile" -- "$@"
}
