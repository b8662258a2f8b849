#!/usr/bin/env bash
# Builds a minimal Debian root filesystem for an ARM device (arm64 or armhf) with Node.js, and caches it as a
# tarball under targets/qemu/cache/, so that every later run unpacks it in seconds instead of bootstrapping.
#   targets/qemu/build-rootfs.sh ARCH       prints the tarball's path on stdout
#   GWMO_QEMU_REBUILD=1 ...                 ignores the cache
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $0 ARCH (arm64 or armhf)"
arch="$1"
qemu_name "$arch" >/dev/null
tarball="$(rootfs_tarball "$arch")"

if [ -s "$tarball" ] && [ "${GWMO_QEMU_REBUILD:-0}" != 1 ]; then
  say "rootfs $arch: cached ($tarball)"
  echo "$tarball"
  exit 0
fi

require_root
ensure_host_tools
ensure_binfmt "$arch"
mkdir -p "$CACHE_DIR"

work="$(mktemp -d "$CACHE_DIR/.build-$arch.XXXXXX")"
cleanup() {
  # A failed debootstrap may leave its own mounts behind; never delete through them.
  for m in proc sys dev/pts dev; do
    mountpoint -q "$work/root/$m" 2>/dev/null && umount -l "$work/root/$m" || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

started=$(date +%s)
say "rootfs $arch: debootstrap $SUITE from $MIRROR (emulated second stage: several minutes)"
if ! debootstrap --variant=minbase --include=nodejs,ca-certificates --arch="$arch" \
    "$SUITE" "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  [ -f "$work/root/debootstrap/debootstrap.log" ] && tail -n 30 "$work/root/debootstrap/debootstrap.log" >&2
  die "debootstrap $arch failed"
fi

# The emulated node must start, or nothing later can work: check it before caching the result.
node_version="$(chroot "$work/root" /usr/bin/node --version)" || die "node does not run in the $arch rootfs"
say "rootfs $arch: node $node_version runs under emulation"

# Trim what a device image would not carry, then cache.
chroot "$work/root" apt-get clean
rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin "$work/root/usr/share/doc/"* \
  "$work/root/usr/share/man/"* "$work/root/usr/share/locale/"*
tar --numeric-owner -C "$work/root" -czf "$work/rootfs.tar.gz" .
mv "$work/rootfs.tar.gz" "$tarball"
say "rootfs $arch: built in $(( $(date +%s) - started ))s, $(du -h "$tarball" | cut -f1) -> $tarball"
echo "$tarball"
