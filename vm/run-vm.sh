#!/bin/bash
# Boot the extracted Debian 6.1 kernel with an initramfs under qemu TCG, bounded by a
# timeout; exit 0 only if the VM printed VMTEST-SUCCESS.
#
# Usage: run-vm.sh [options] INITRAMFS TIMEOUT_SECONDS [-- COMMAND...]
#   -m MB        guest memory (default 1024)
#   -c N         guest CPUs (default 1; TCG runs one host thread per vCPU)
#   -k VMLINUZ   kernel (default: newest cache/kernel/boot/vmlinuz-*)
#   -a ARGS      extra kernel command line arguments (e.g. vmtest.dmesg, vmtest.shell)
#   -l LOG       serial log file (default: ./last-run.log); CRs are stripped
#   -v           kernel boot messages on the console (default: quiet)
#   -i           interactive: keep stdin attached (with -a vmtest.shell)
# COMMAND, when given, is put after " -- " on the kernel command line and /init runs it
# with `sh -c` instead of /run-tests.sh (keep it short: the command line holds 2 KiB).
# Exit codes: 0 success, 1 VM finished without VMTEST-SUCCESS, 124 timeout.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
MEM=1024; CPUS=1; KERNEL=""; EXTRA=""; LOG="$HERE/../target/vm/last-run.log"; QUIET="quiet"; INTERACTIVE=0
while getopts "m:c:k:a:l:vih" opt; do
    case $opt in
        m) MEM=$OPTARG ;; c) CPUS=$OPTARG ;; k) KERNEL=$OPTARG ;;
        a) EXTRA="$EXTRA $OPTARG" ;; l) LOG=$OPTARG ;; v) QUIET="" ;; i) INTERACTIVE=1 ;;
        h) sed -n '2,16p' "$0"; exit 0 ;; *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
INITRD=$1; TIMEOUT=$2; shift 2
CMD=""
if [ "${1:-}" = "--" ]; then shift; CMD="$*"; fi
if [ -z "$KERNEL" ]; then
    KERNEL=$(ls "${VM_CACHE:-$HERE/../target/vm-cache}"/kernel/boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)
fi
[ -f "$KERNEL" ] || { echo "no kernel (run setup.sh)" >&2; exit 2; }
[ -f "$INITRD" ] || { echo "no initramfs $INITRD" >&2; exit 2; }

APPEND="console=ttyS0 lsm=landlock,lockdown,yama,apparmor,bpf panic=-1 $QUIET$EXTRA"
[ -n "$CMD" ] && APPEND="$APPEND -- $CMD"

# Strip CRs, copy the console to stdout and $LOG, and write "<host seconds since qemu
# start> <line>" for every VMTEST-* line to $LOG.timing (host-side timings, e.g. qemu
# start -> sensor ready). Done line by line in bash: `tr` or `tee` in a pipe would
# block-buffer and make the host timestamps meaningless.
console_filter() {
    local line t0=$EPOCHREALTIME
    : >"$LOG"; : >"$LOG.timing"
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line//$'\r'/}
        printf '%s\n' "$line"
        printf '%s\n' "$line" >>"$LOG"
        case $line in
            VMTEST-*) awk -v a="$t0" -v b="$EPOCHREALTIME" -v l="$line" \
                'BEGIN{printf "%7.2f %s\n", b-a, l}' >>"$LOG.timing" ;;
        esac
    done
}

STDIN=/dev/null
[ "$INTERACTIVE" = 1 ] && STDIN=/dev/stdin
start=$(date +%s.%N)
# -nodefaults: no NIC (no iPXE ROM), no VGA; the serial port is the only console.
timeout -k 5 "$TIMEOUT" qemu-system-x86_64 \
    -accel tcg -cpu max -smp "$CPUS" -m "$MEM" \
    -nodefaults -no-user-config -display none -serial stdio -no-reboot \
    -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" <"$STDIN" 2>&1 |
    console_filter
qrc=${PIPESTATUS[0]}
end=$(date +%s.%N)
wall=$(awk "BEGIN{printf \"%.1f\", $end-$start}")
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    echo "run-vm: TIMEOUT after ${TIMEOUT}s (wall ${wall}s)" >&2; exit 124
fi
if grep -q '^VMTEST-SUCCESS' "$LOG"; then
    echo "run-vm: SUCCESS (wall ${wall}s, qemu rc=$qrc)" >&2; exit 0
fi
echo "run-vm: FAILURE (wall ${wall}s, qemu rc=$qrc; see $LOG)" >&2
exit 1
