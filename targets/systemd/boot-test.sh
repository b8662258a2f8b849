#!/usr/bin/env bash
# Runs the packaged unit under a real systemd: boots a Debian container (systemd-nspawn, private network, its
# own mosquitto) and checks the package's whole life there: install enables the unit and creates the secrets
# group, the start waits for config.json, the sandboxed agent starts (dynamic user, 0700 state, JIT, netlink
# and /proc/net/route allowed) and publishes its retained online, `systemctl stop` ends it cleanly, removal
# stops it and purge deletes its state. systemd-analyze checks the unit's text; this checks that node survives it.
#   targets/systemd/boot-test.sh           root only; the container's rootfs is cached beside the QEMU ones
#   GWMO_QEMU_BUNDLE=FILE                  packages that prebuilt bundle instead of building src/
set -euo pipefail
# shellcheck source=../qemu/lib.sh
. "$(dirname "$0")/../qemu/lib.sh"
require_root
command -v systemd-nspawn >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd-container >/dev/null; }
command -v debootstrap >/dev/null || ensure_host_tools

failures=0
pass() { printf 'PASS systemd: %s\n' "$1"; }
fail() { printf 'FAIL systemd: %s\n' "$1"; failures=$((failures + 1)); }

arch="$(dpkg --print-architecture)"
tarball="$CACHE_DIR/rootfs-$SUITE-$arch-systemd-r$ROOTFS_REVISION.tar.gz"
if [ ! -s "$tarball" ] || [ "${GWMO_QEMU_REBUILD:-0}" = 1 ]; then
  mkdir -p "$CACHE_DIR"
  build="$(mktemp -d "$CACHE_DIR/.build-$arch-systemd.XXXXXX")"
  say "rootfs $arch+systemd: debootstrap $SUITE"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,nodejs,ca-certificates,mosquitto,mosquitto-clients \
    "$SUITE" "$build/root" "$MIRROR" > "$build/debootstrap.log" 2>&1 || { tail -n 20 "$build/debootstrap.log"; die "debootstrap"; }
  chroot "$build/root" apt-get clean
  tar --numeric-owner -C "$build/root" -czf "$build/rootfs.tar.gz" .
  mv "$build/rootfs.tar.gz" "$tarball"
  rm -rf --one-file-system "$build"
fi

work="$(mktemp -d /tmp/gwmo-boot.XXXXXX)"
nspawn_pid=
cleanup() {
  if [ -n "$nspawn_pid" ]; then kill "$nspawn_pid" 2>/dev/null || true; wait "$nspawn_pid" 2>/dev/null || true; fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

if [ -n "${GWMO_QEMU_BUNDLE:-}" ]; then
  deb="$(node "$PROJECT_ROOT/build/package-deb.mjs" --out "$work" --bundle "$GWMO_QEMU_BUNDLE")"
else
  node "$PROJECT_ROOT/build/bundle.mjs" >/dev/null
  deb="$(node "$PROJECT_ROOT/build/package-deb.mjs" --out "$work")"
fi
root="$work/root"
mkdir -p "$root"
tar --numeric-owner -xzf "$tarball" -C "$root"
cp "$deb" "$root/root/gwmo-agent.deb"
cp "$QEMU_DIR/factory-bootstrap.xml" "$root/root/"
node -e '
  const fs = require("fs"); const [src, dst] = process.argv.slice(1)
  const c = JSON.parse(fs.readFileSync(src, "utf8"))
  Object.assign(c, { broker: { url: "mqtt://127.0.0.1:1883" }, factoryBootstrap: "/etc/gwmo-agent/factory-bootstrap.xml", stateDir: "/var/lib/gwmo-agent" })
  fs.writeFileSync(dst, JSON.stringify(c, null, 2) + "\n")' "$QEMU_DIR/device-config.json" "$root/root/config.json"
device_id="$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).deviceId' "$root/root/config.json")"
status_topic="omadm/v1/$(node -p 'encodeURIComponent(process.argv[1])' "$device_id")/status"

# --keep-unit and --register=no: the host need not run systemd itself.
systemd-nspawn -D "$root" --private-network --register=no --keep-unit -b > "$work/console.log" 2>&1 &
nspawn_pid=$!
leader=
booted=
for _ in $(seq 240); do
  leader="$(pgrep -P "$nspawn_pid" -x systemd 2>/dev/null | head -n 1 || true)"
  if [ -n "$leader" ]; then
    case "$(nsenter -t "$leader" -a /bin/systemctl is-system-running --wait 2>/dev/null || true)" in
      running|degraded) booted=1; break ;;
    esac
  fi
  sleep 0.5
done
[ -n "$booted" ] || die "the container did not boot: $(tail -n 20 "$work/console.log")"
inside() { nsenter -t "$leader" -a /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
prop() { inside systemctl show gwmo-agent.service -p "$1" --value; }

inside dpkg -i /root/gwmo-agent.deb > "$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; die "dpkg -i"; }
[ "$(inside systemctl is-enabled gwmo-agent.service)" = enabled ] && pass "install enabled the unit" || fail "unit not enabled by install"
inside getent group gwmo-agent-conf >/dev/null && pass "install created group gwmo-agent-conf" || fail "no gwmo-agent-conf group"
[ "$(prop ConditionResult)" = no ] && [ "$(prop ActiveState)" = inactive ] \
  && pass "without config.json the start is skipped, not failed" || fail "unconfigured start: $(prop ActiveState)/$(prop Result)"

inside install -m 0640 -g gwmo-agent-conf /root/config.json /root/factory-bootstrap.xml /etc/gwmo-agent/
inside systemctl start gwmo-agent.service || true
if inside timeout 120 mosquitto_sub -h 127.0.0.1 -t "$status_topic" -C 1 -W 120 2>/dev/null | grep -qx online; then
  pass "the sandboxed agent published its retained online"
  [ "$(prop ActiveState)" = active ] && pass "the unit is active" || fail "unit $(prop ActiveState) after online"
  state_mode="$(inside stat -c %a /var/lib/private/gwmo-agent)"
  [ "$state_mode" = 700 ] && pass "state directory 0700" || fail "state directory mode $state_mode"
  inside systemctl stop gwmo-agent.service
  [ "$(prop Result)" = success ] && [ "$(prop ExecMainStatus)" = 0 ] \
    && pass "systemctl stop: exit 0" || fail "stop: result $(prop Result), status $(prop ExecMainStatus)"
  [ "$(inside timeout 20 mosquitto_sub -h 127.0.0.1 -t "$status_topic" -C 1 -W 20 2>/dev/null)" = offline ] \
    && pass "retained offline after stop" || fail "no retained offline after stop"
else
  fail "no retained online; journal: $(inside journalctl -u gwmo-agent.service -o cat --no-pager | tail -n 8 | tr '\n' ' ')"
fi

inside systemctl start gwmo-agent.service || true
inside dpkg -r gwmo-agent > /dev/null 2>&1
case "$(prop ActiveState)" in active|activating|deactivating) fail "agent $(prop ActiveState) after removal" ;; *) pass "removal stopped the agent" ;; esac
inside dpkg --purge gwmo-agent > /dev/null 2>&1
inside test ! -e /var/lib/private/gwmo-agent && pass "purge deleted the state" || fail "state left after purge"

if [ "$failures" -gt 0 ]; then printf 'FAIL systemd: %d check(s) failed\n' "$failures"; exit 1; fi
printf 'PASS systemd: the unit runs the agent under systemd\n'
