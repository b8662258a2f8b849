# Shared by build-rootfs.sh and run.sh: sourced, never run.
# shellcheck shell=bash

QEMU_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT_ROOT="$(cd "$QEMU_DIR/../.." && pwd)"
CACHE_DIR="${GWMO_QEMU_CACHE:-$QEMU_DIR/cache}"
SUITE="${GWMO_QEMU_SUITE:-bookworm}"
MIRROR="${GWMO_QEMU_MIRROR:-http://deb.debian.org/debian}"
# Bump when the package set or the trimming changes, so an old cached tarball is not reused.
ROOTFS_REVISION=1

say() { printf '%s\n' "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }

# Debian architecture -> the qemu binfmt entry that runs it.
qemu_name() {
  case "$1" in
    arm64) echo aarch64 ;;
    armhf|armel) echo arm ;;
    *) die "unsupported architecture '$1' (arm64, armhf)" ;;
  esac
}

rootfs_tarball() { echo "$CACHE_DIR/rootfs-$SUITE-$1-r$ROOTFS_REVISION.tar.gz"; }

require_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mounts)"
}

# Installs the host tools when missing; root only, since apt-get needs it.
ensure_host_tools() {
  local missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
  command -v update-binfmts >/dev/null || missing+=(binfmt-support)
  [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || missing+=(mosquitto)
  command -v dpkg-deb >/dev/null || missing+=(dpkg)
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing host tools: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Foreign binaries run through the kernel's binfmt_misc with qemu's "F" (fix binary) flag, so the interpreter
# is opened once at registration and needs no copy inside the chroot.
ensure_binfmt() {
  local q
  q="$(qemu_name "$1")"
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc"
  fi
  if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$q" ] || ! grep -q '^enabled' "/proc/sys/fs/binfmt_misc/qemu-$q"; then
    update-binfmts --enable "qemu-$q" >/dev/null 2>&1 || update-binfmts --import "qemu-$q" >/dev/null 2>&1 || true
  fi
  grep -q '^enabled' "/proc/sys/fs/binfmt_misc/qemu-$q" 2>/dev/null || die "binfmt entry qemu-$q is not enabled"
}
