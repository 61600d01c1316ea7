#!/bin/bash
# Build a gzip'd cpio initramfs for the kernel-matrix VM tier.
#
# Usage: build-initramfs.sh [options] [BINARY...]
#   -o FILE        output (default: ./initramfs.cpio.gz next to this script)
#   -t SCRIPT      bake SCRIPT in as /run-tests.sh (run by /init when the kernel
#                  command line carries no "-- CMD")
#   -f SRC[:DST]   copy a host file or directory (recursively) to DST (default: same path)
#   -k KMOD        add kernel module KMOD and its dependencies from the extracted kernel
#                  (KDIR, see below); /init insmods them in order at boot. Repeatable.
#   -s             strip debug info from the copied ELF files (binaries and libraries).
#                  The debug sensor goes from 138 MB to ~20 MB; boots much faster.
#   -z LEVEL       gzip level (default 1; 0 = no compression, plain cpio)
#   -K KDIR        extracted linux-image package root (default: cache/kernel)
#
# Every BINARY is copied to the same absolute path inside the initramfs together with
# every shared library `ldd` reports (same absolute paths) and the dynamic loader.
# The image is merged-/usr like the Debian 12 host (/bin, /sbin, /lib, /lib64 are
# symlinks into /usr), so ldd's /lib/x86_64-linux-gnu/... paths land where the
# loader's default search path expects them.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT="$(cd "$HERE/.." && pwd)/target/vm/initramfs.cpio.gz"
TESTS=""
STRIP=0
LEVEL=1
KDIR="${VM_CACHE:-$(cd "$HERE/.." && pwd)/target/vm-cache}/kernel"
FILES=()
KMODS=()

while getopts "o:t:f:k:sz:K:h" opt; do
    case $opt in
        o) OUT=$OPTARG ;;
        t) TESTS=$OPTARG ;;
        f) FILES+=("$OPTARG") ;;
        k) KMODS+=("$OPTARG") ;;
        s) STRIP=1 ;;
        z) LEVEL=$OPTARG ;;
        K) KDIR=$OPTARG ;;
        h) sed -n '2,22p' "$0"; exit 0 ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))

BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] && "$BUSYBOX" --list-full >/dev/null 2>&1 || { echo "need busybox-static (apt-get install busybox-static)" >&2; exit 1; }
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    echo "$BUSYBOX is dynamically linked; install busybox-static" >&2; exit 1
fi
command -v cpio >/dev/null || { echo "need cpio (apt-get install cpio)" >&2; exit 1; }

ROOT=$(mktemp -d /tmp/initramfs.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT

# Skeleton, merged /usr.
mkdir -p "$ROOT"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc,proc,sys,dev,tmp,run,root,var,mnt}
ln -s usr/bin "$ROOT/bin"; ln -s usr/sbin "$ROOT/sbin"
ln -s usr/lib "$ROOT/lib"; ln -s usr/lib64 "$ROOT/lib64"
ln -s ../run "$ROOT/var/run"
mkdir -p "$ROOT/var/lib" "$ROOT/var/tmp"
chmod 1777 "$ROOT/tmp" "$ROOT/var/tmp"
# The kernel opens /dev/console of the initramfs for init's stdio before /init can
# mount devtmpfs: without this node init runs with no stdin/stdout/stderr.
mknod -m 600 "$ROOT/dev/console" c 5 1
mknod -m 666 "$ROOT/dev/null" c 1 3

# busybox + applet symlinks (absolute target; skip applets a real binary will replace).
cp "$BUSYBOX" "$ROOT/usr/bin/busybox"
"$BUSYBOX" --list-full | while read -r applet; do
    dst="$ROOT/$applet"
    [ -e "$dst" ] || [ -L "$dst" ] || ln -s /usr/bin/busybox "$dst"
done

cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo vmtest >"$ROOT/etc/hostname"
printf '127.0.0.1 localhost vmtest\n::1 localhost\n' >"$ROOT/etc/hosts"
: >"$ROOT/etc/fstab"

# copy_path SRC DST: copy one file, dereferencing symlinks, replacing any busybox link.
copy_path() {
    local src=$1 dst="$ROOT$2"
    mkdir -p "$(dirname "$dst")"
    rm -f "$dst"
    cp -L --preserve=mode "$src" "$dst"
    if [ "$STRIP" = 1 ] && head -c4 "$dst" | grep -q 'ELF'; then
        strip --strip-debug "$dst" 2>/dev/null || true
    fi
}

declare -A DONE=()
add_elf() {
    local bin=$1
    [ -n "${DONE[$bin]:-}" ] && return 0
    DONE[$bin]=1
    copy_path "$bin" "$bin"
    # A busybox applet of the same name elsewhere in PATH (e.g. busybox's /usr/sbin/ip vs
    # iproute2's /usr/bin/ip) would shadow the real binary: point it at the real one.
    local name d
    name=$(basename "$bin")
    for d in /usr/sbin /usr/bin; do
        if [ "$(readlink "$ROOT$d/$name" 2>/dev/null)" = /usr/bin/busybox ]; then
            ln -sfn "$bin" "$ROOT$d/$name"
        fi
    done
    # Static binaries: ldd exits non-zero ("not a dynamic executable").
    local libs
    libs=$(ldd "$bin" 2>/dev/null | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}') || true
    for lib in $libs; do
        [ -n "${DONE[$lib]:-}" ] && continue
        DONE[$lib]=1
        copy_path "$lib" "$lib"
    done
}

# The loader, always (ldd reports it, but a static-only list would lack it).
add_elf /lib64/ld-linux-x86-64.so.2

for bin in "$@"; do
    [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 1; }
    case $bin in /*) ;; *) bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin") ;; esac
    add_elf "$bin"
done

for spec in "${FILES[@]}"; do
    src=${spec%%:*}; dst=${spec#*:}; [ "$dst" = "$spec" ] && dst=$src
    mkdir -p "$(dirname "$ROOT$dst")"
    if [ -d "$src" ]; then
        mkdir -p "$ROOT$dst"
        cp -a "$src/." "$ROOT$dst/"
    else
        copy_path "$src" "$dst"
    fi
done

# Kernel modules: dependency order from modprobe --show-depends against the extracted tree.
if [ ${#KMODS[@]} -gt 0 ]; then
    KVER=$(ls "$KDIR/lib/modules" | head -1)
    [ -f "$KDIR/lib/modules/$KVER/modules.dep" ] || depmod -b "$KDIR" "$KVER"
    : >"$ROOT/etc/vmtest-modules"
    for m in "${KMODS[@]}"; do
        modprobe -d "$KDIR" -S "$KVER" --show-depends "$m" | while read -r kind path _; do
            [ "$kind" = insmod ] || continue
            rel=${path#"$KDIR"}
            grep -qxF "$rel" "$ROOT/etc/vmtest-modules" && continue
            mkdir -p "$(dirname "$ROOT$rel")"
            cp "$path" "$ROOT$rel"
            echo "$rel" >>"$ROOT/etc/vmtest-modules"
        done
    done
fi

install -m 0755 "$HERE/init" "$ROOT/init"
install -m 0644 "$HERE/vmtest-lib.sh" "$ROOT/usr/lib/vmtest-lib.sh"
if [ -n "$TESTS" ]; then
    install -m 0755 "$TESTS" "$ROOT/run-tests.sh"
fi

mkdir -p "$(dirname "$OUT")"
if [ "$LEVEL" = 0 ]; then
    (cd "$ROOT" && find . -print0 | cpio --null -o -H newc --owner 0:0 --quiet) >"$OUT.tmp"
else
    (cd "$ROOT" && find . -print0 | cpio --null -o -H newc --owner 0:0 --quiet) | gzip -"$LEVEL" >"$OUT.tmp"
fi
mv "$OUT.tmp" "$OUT"
echo "initramfs: $OUT ($(du -h "$OUT" | cut -f1), unpacked $(du -sh "$ROOT" | cut -f1))" >&2
