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
