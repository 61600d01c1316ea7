# Helpers for VM test scripts (sourced; busybox ash). Markers go to the serial console:
#   VMTEST-BEGIN <name> t=<uptime>
#   ... output of the step (stdout+stderr) ...
#   VMTEST-END <name> rc=<N> t=<uptime> dt=<seconds>
# Every step's result is appended to /run/vmtest/results ("<name> <rc>"); /init totals them.

VMTEST_RESULTS=/run/vmtest/results
mkdir -p /run/vmtest

vm_uptime() { cut -d' ' -f1 /proc/uptime; }

# vmstep NAME CMD [ARG...]: run a command as a named step.
vmstep() {
    _name=$1; shift
    _t0=$(vm_uptime)
    echo "VMTEST-BEGIN $_name t=$_t0"
    "$@" 2>&1
    _rc=$?
    _t1=$(vm_uptime)
    echo "VMTEST-END $_name rc=$_rc t=$_t1 dt=$(awk "BEGIN{printf \"%.2f\", $_t1-$_t0}")"
    echo "$_name $_rc" >>"$VMTEST_RESULTS"
    return $_rc
}

# vmstep_sh NAME 'shell code': run shell code as a named step (in a child shell, set -e off).
vmstep_sh() {
    _n=$1; shift
    vmstep "$_n" sh -c "$*"
}

# vm_wait SECONDS CMD [ARG...]: poll CMD every 0.2 s until it succeeds; rc 1 on timeout.
vm_wait() {
    _deadline=$(awk "BEGIN{print $(vm_uptime)+$1}"); shift
    while ! "$@" >/dev/null 2>&1; do
        if awk "BEGIN{exit !($(vm_uptime) > $_deadline)}"; then return 1; fi
        sleep 0.2
    done
}
