#!/bin/bash
# One-time setup for the kernel-matrix VM tier: host packages + Debian's 6.1 kernel.
# Usage: setup.sh [PACKAGE]   e.g. setup.sh linux-image-6.1.0-56-amd64 (default: newest
# linux-image-6.1.0-N-amd64 apt knows). Idempotent; the .deb and its extraction are kept
# in cache/ (Debian drops old kernel ABIs from the mirror, so keep the .deb if you pin one).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# The kernel package and its extraction live under target/ (not committed, kept between runs).
CACHE=${VM_CACHE:-$(cd "$HERE/.." && pwd)/target/vm-cache}

need=()
for p in qemu-system-x86 cpio busybox-static apparmor runc bpftool kmod; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

PKG=${1:-$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | awk '{print $1}' | sort -V | tail -1)}
[ -n "$PKG" ] || { echo "no linux-image-6.1.0-*-amd64 in apt (apt-get update?)" >&2; exit 1; }
mkdir -p "$CACHE"
cd "$CACHE"
deb=$(ls "${PKG}"_*.deb 2>/dev/null | tail -1 || true)
if [ -z "$deb" ]; then
    # apt-get download as root warns that _apt cannot write here; harmless.
    apt-get download "$PKG" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
    deb=$(ls "${PKG}"_*.deb | tail -1)
fi
KVER=${PKG#linux-image-}
if [ ! -f "$CACHE/kernel/boot/vmlinuz-$KVER" ]; then
    dpkg -x "$deb" "$CACHE/kernel"
fi
echo "kernel: $CACHE/kernel/boot/vmlinuz-$KVER (from $deb)"
grep -E '^CONFIG_(BPF_LSM|DEBUG_INFO_BTF|SECURITY_APPARMOR|BPF_SYSCALL|LSM)=' "$CACHE/kernel/boot/config-$KVER"
