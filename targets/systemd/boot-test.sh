#!/usr/bin/env bash
# Runs the packaged unit under a real systemd: boots a Debian container (systemd-nspawn, private network, its
# own mosquitto) and checks the package's whole life there: install enables the unit and creates the secrets
# group, the start waits for config.json, the sandboxed agent starts (dynamic user, 0700 state, JIT, netlink
# and /proc/net/route allowed) and publishes its retained online, `systemctl stop` ends it cleanly, removal
# stops it and purge deletes its state. systemd-analyze checks the unit's text; this checks that node survives it.
# Then the agent updates itself over FUMO (binding.md §9): a DM Server (the peers, inside the container) Execs
# DownloadAndUpdate of a newer build of the same .deb, served over HTTP in the container; the agent spools it,
# the path unit starts the root-side installer, dpkg replaces and restarts the agent, and the new agent runs
# verify and reports 200 with its new version, its unit's sandbox unchanged and its process without privilege.
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
  bundle="$GWMO_QEMU_BUNDLE"
else
  node "$PROJECT_ROOT/build/bundle.mjs" >/dev/null
  bundle="$PROJECT_ROOT/dist/gwmo-agent.js"
fi
deb="$(node "$PROJECT_ROOT/build/package-deb.mjs" --out "$work" --bundle "$bundle")"
# The newer release FUMO installs: the same bundle, saying a higher version of itself.
old_version="$(node -p 'require(process.argv[1]).version' "$PROJECT_ROOT/package.json")"
new_version="$old_version+fumo1"
mkdir -p "$work/new"
node -e '
  const fs = require("fs"); const [src, dst, from, to] = process.argv.slice(1)
  const text = fs.readFileSync(src, "utf8"); const literal = JSON.stringify(from)
  if (text.split(literal).length !== 2) { console.error("the bundle does not hold its version exactly once"); process.exit(1) }
  fs.writeFileSync(dst, text.replace(literal, JSON.stringify(to)))' "$bundle" "$work/new/gwmo-agent.js" "$old_version" "$new_version"
cp "$(dirname "$bundle")/gwmo-agent-ddf.js" "$work/new/"
new_deb="$(node "$PROJECT_ROOT/build/package-deb.mjs" --out "$work/new" --bundle "$work/new/gwmo-agent.js" --version "$new_version")"
root="$work/root"
mkdir -p "$root"
tar --numeric-owner -xzf "$tarball" -C "$root"
cp "$deb" "$root/root/gwmo-agent.deb"
cp "$new_deb" "$root/root/gwmo-agent-new.deb"
cp "$PROJECT_ROOT/dist/peers.js" "$root/root/peers.js"
cat > "$root/root/serve.js" <<'EOF'
// The download server of the self-update: the newer .deb, with a validator (so a dropped download resumes).
const fs = require('fs')
require('http').createServer((req, res) => {
  const body = fs.readFileSync('/root/gwmo-agent-new.deb')
  res.writeHead(200, { 'content-length': body.length, etag: '"v1"' })
  res.end(body)
}).listen(8080, '127.0.0.1')
EOF
cp "$QEMU_DIR/factory-bootstrap.xml" "$root/root/"
node -e '
  const fs = require("fs"); const [src, dst] = process.argv.slice(1)
  const c = JSON.parse(fs.readFileSync(src, "utf8"))
  Object.assign(c, { broker: { url: "mqtt://127.0.0.1:1883" }, factoryBootstrap: "/etc/gwmo-agent/factory-bootstrap.xml", stateDir: "/var/lib/gwmo-agent",
    session: { timeoutSeconds: 10, retries: 3, retryBackoffSeconds: 5, maxBackoffSeconds: 30 },
    fumo: { module: "/usr/lib/gwmo-agent/fumo-deb-module", installer: "spool", acl: "Get=*&Replace=qemu-dm-server&Exec=qemu-dm-server" } })
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

# ---- FUMO self-update through the spool and the root-side installer ----
sandbox() { inside systemctl show gwmo-agent.service -p DynamicUser -p User -p NoNewPrivileges -p CapabilityBoundingSet -p AmbientCapabilities -p ProtectSystem -p SystemCallFilter -p RestrictAddressFamilies; }
sandbox_before="$(sandbox)"
[ "$(inside systemctl is-active gwmo-agent-installer.path)" = active ] && pass "the installer's path unit watches the spool" || fail "installer path unit $(inside systemctl is-active gwmo-agent-installer.path)"
inside systemctl start gwmo-agent.service || true
inside timeout 60 mosquitto_sub -h 127.0.0.1 -t "$status_topic" -C 1 -W 60 >/dev/null 2>&1 || true
# The package server and the DM Server run inside the container (its network is private).
inside sh -c 'nohup node /root/serve.js > /root/serve.log 2>&1 &'
creds=(--broker mqtt://127.0.0.1:1883 --server-id qemu-dm-server --device-id "$device_id" --server-name qemu-dm-server
  --server-password qemu-server-secret --client-name "$device_id" --client-password qemu-device-secret
  --server-nonce cWVtdS1zZXJ2ZXItbm9uY2U= --client-nonce cWVtdS1kZXZpY2Utbm9uY2U=)
sha="$(sha256sum "$new_deb" | cut -c1-64)"
inside timeout 60 node /root/peers.js dm-server "${creds[@]}" --push --sessions 1 \
  --replace "./FUMO/1/DownloadAndUpdate/PkgURL=http://127.0.0.1:8080/gwmo-agent-new.deb" --replace "./FUMO/1/Ext/PkgSHA256=$sha" \
  --exec ./FUMO/1/DownloadAndUpdate > "$work/push.log" 2>&1 || true
grep -q 'status Exec ./FUMO/1/DownloadAndUpdate: 202' "$work/push.log" && pass "DownloadAndUpdate accepted (202)" || fail "Exec not accepted: $(grep status "$work/push.log" | tr '\n' ' ')"
# The new agent's session carries the result; the server reads the version in it.
inside timeout 240 node /root/peers.js dm-server "${creds[@]}" --get ./DevDetail/Ext/GwmoAgent/Version --sessions 1 > "$work/result.log" 2>&1 || true
until_result=0
while ! grep -q 'generic alert org.openmobilealliance.dm.firmwareupdate.downloadandupdate' "$work/result.log" && [ "$until_result" -lt 3 ]; do
  until_result=$((until_result + 1))
  inside timeout 120 node /root/peers.js dm-server "${creds[@]}" --get ./DevDetail/Ext/GwmoAgent/Version --sessions 1 >> "$work/result.log" 2>&1 || true
done
if grep -q 'generic alert org.openmobilealliance.dm.firmwareupdate.downloadandupdate (int): 200' "$work/result.log"; then
  pass "the self-update reported 200"
else
  fail "no result 200: $(grep -E 'generic alert|status' "$work/result.log" | tr '\n' ' '); agent: $(inside journalctl -u gwmo-agent.service -o cat --no-pager | grep -i fumo | tail -n 6 | tr '\n' ' '); installer: $(inside journalctl -u gwmo-agent-installer.service -o cat --no-pager | tail -n 6 | tr '\n' ' ')"
fi
grep -q "result ./DevDetail/Ext/GwmoAgent/Version = $new_version" "$work/result.log" && pass "the agent now says it is $new_version" || fail "version after the update: $(grep 'result ./DevDetail' "$work/result.log")"
[ "$(inside dpkg-query -W -f '${Version}' gwmo-agent)" = "$new_version-1" ] && pass "dpkg has $new_version-1" || fail "dpkg has $(inside dpkg-query -W -f '${Version}' gwmo-agent)"
[ "$(inside systemctl show gwmo-agent-installer.service -p Result --value)" = success ] && pass "the root-side installer ran and succeeded" || fail "installer: $(inside systemctl show gwmo-agent-installer.service -p Result --value)"
[ "$(sandbox)" = "$sandbox_before" ] && pass "the agent's unit gained no privilege" || fail "the agent's unit changed: $(sandbox | tr '\n' ' ')"
main_pid="$(prop MainPID)"
if [ "$main_pid" -gt 0 ] && inside grep -q '^Uid:[[:space:]]*[1-9]' "/proc/$main_pid/status" && inside grep -q '^CapEff:[[:space:]]*0*$' "/proc/$main_pid/status"; then
  pass "the updated agent runs unprivileged (no root, no capability)"
else
  fail "the updated agent's process: $(inside grep -E '^(Uid|CapEff)' "/proc/$main_pid/status" 2>&1 | tr '\n' ' ')"
fi
inside systemctl stop gwmo-agent.service

inside systemctl start gwmo-agent.service || true
inside dpkg -r gwmo-agent > /dev/null 2>&1
case "$(prop ActiveState)" in active|activating|deactivating) fail "agent $(prop ActiveState) after removal" ;; *) pass "removal stopped the agent" ;; esac
inside dpkg --purge gwmo-agent > /dev/null 2>&1
inside test ! -e /var/lib/private/gwmo-agent && pass "purge deleted the state" || fail "state left after purge"

if [ "$failures" -gt 0 ]; then printf 'FAIL systemd: %d check(s) failed\n' "$failures"; exit 1; fi
printf 'PASS systemd: the unit runs the agent under systemd\n'
