#!/usr/bin/env bash
# Installs the .deb into emulated ARM Debian root file systems and runs the agent there against a private
# mosquitto on the host's 127.0.0.1 (a chroot shares the host's network). What `npm run test:qemu` runs.
#   targets/qemu/run.sh [ARCH...]          ARCH: arm64, armhf (default: both); root only
#
# For each architecture: the cached rootfs (build-rootfs.sh) is unpacked into a temporary folder, the .deb is
# installed with dpkg inside it, `gwmo-agent --version` must print the package version, then the agent runs
# with the test config (device-config.json, factory-bootstrap.xml), its retained `online` must appear on the
# broker, the end-to-end hook runs, and SIGTERM must leave a retained `offline` and exit status 0.
#
# End-to-end hook: test/e2e/flow.mjs (or the file GWMO_E2E_FLOW names), run with the host's node while the
# emulated agent is online. It is never skipped when present; it gets:
#   GWMO_E2E_BROKER_URL     mqtt://127.0.0.1:PORT, the broker the device is connected to
#   GWMO_E2E_DEVICE_ID      the device's DevId
#   GWMO_E2E_TOPIC_PREFIX   the topic prefix (omadm/v1)
#   GWMO_E2E_CONFIG         host path of the device's config.json (factoryBootstrap, secrets) as the device has it
#   GWMO_E2E_ROOTFS         the device's root folder (its factory bootstrap is ROOTFS + config.factoryBootstrap)
#   GWMO_E2E_AGENT_LOG      host path of the agent's stdout, one JSON object a line
#   GWMO_E2E_TIMEOUT_SCALE  how much slower the emulated device is than native: multiply every timeout by it
#   GWMO_E2E_ARCH           arm64 or armhf
# and exits 0 on success. If test/e2e/device-config.json exists, the device is configured from it instead of
# targets/qemu/device-config.json (its factoryBootstrap relative to test/e2e/), so the flow picks the
# device's accounts and secrets.
#
# Environment: GWMO_QEMU_TIMEOUT_SCALE (default 12), GWMO_QEMU_KEEP=1 keeps the unpacked roots,
# GWMO_QEMU_BUNDLE=FILE packages that prebuilt bundle instead of building src/,
# GWMO_QEMU_CACHE / GWMO_QEMU_MIRROR / GWMO_QEMU_REBUILD as in build-rootfs.sh.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(arm64 armhf)
SCALE="${GWMO_QEMU_TIMEOUT_SCALE:-12}"
E2E_FLOW="${GWMO_E2E_FLOW:-$PROJECT_ROOT/test/e2e/flow.mjs}"
E2E_CONFIG="$(dirname "$E2E_FLOW")/device-config.json"
require_root
ensure_host_tools

failures=0
summary=()
pass() { printf 'PASS %s: %s\n' "$1" "$2"; }
fail() { printf 'FAIL %s: %s\n' "$1" "$2"; failures=$((failures + 1)); }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

work="$(mktemp -d /tmp/gwmo-qemu.XXXXXX)"
mounts=()
pids=()
cleanup() {
  local i
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}" || true; done
  if [ "${GWMO_QEMU_KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf --one-file-system "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the package under test ------------------------------------------------------------------------------
started=$(now)
if [ -n "${GWMO_QEMU_BUNDLE:-}" ]; then
  deb="$(node "$PROJECT_ROOT/build/package-deb.mjs" --out "$work" --bundle "$GWMO_QEMU_BUNDLE")"
else
  node "$PROJECT_ROOT/build/bundle.mjs" >/dev/null
  deb="$(node "$PROJECT_ROOT/build/package-deb.mjs" --out "$work")"
fi
version="$(node -p 'require(process.argv[1]).version' "$PROJECT_ROOT/package.json")"
say "package: $(basename "$deb") built in $(since "$started")s"

# --- a private broker on the host's loopback, reachable from every chroot --------------------------------
port="$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })')"
broker="mqtt://127.0.0.1:$port"
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" > "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  node -e 'require("net").connect(+process.argv[1], "127.0.0.1").on("connect", () => process.exit(0)).on("error", () => process.exit(1))' "$port" && break
  sleep 0.1
done
say "broker: $broker"

# --- one architecture ------------------------------------------------------------------------------------
run_arch() {
  local arch="$1" t0 t cold rootfs dir cfg device_id agent_pid log status online_s
  t0=$(now)
  ensure_binfmt "$arch"
  if [ -s "$(rootfs_tarball "$arch")" ] && [ "${GWMO_QEMU_REBUILD:-0}" != 1 ]; then cold=warm; else cold=cold; fi
  if ! rootfs="$("$QEMU_DIR/build-rootfs.sh" "$arch")"; then fail "$arch" "rootfs"; return; fi
  local rootfs_s; rootfs_s=$(since "$t0")

  t=$(now)
  dir="$work/$arch"
  mkdir -p "$dir"
  tar --numeric-owner -xzf "$rootfs" -C "$dir"
  for m in proc sys dev dev/pts; do
    mkdir -p "$dir/$m"
    mount --bind "/$m" "$dir/$m"
    mounts+=("$dir/$m")
  done
  local unpack_s; unpack_s=$(since "$t")

  t=$(now)
  cp "$deb" "$dir/tmp/"
  if chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg -i "/tmp/$(basename "$deb")" \
      > "$work/$arch-dpkg.log" 2>&1; then
    pass "$arch" "dpkg -i $(basename "$deb") ($(since "$t")s)"
  else
    fail "$arch" "dpkg -i: $(tail -n 5 "$work/$arch-dpkg.log" | tr '\n' ' ')"
    return
  fi
  if chroot "$dir" getent group gwmo-agent-conf >/dev/null; then pass "$arch" "postinst created group gwmo-agent-conf"
  else fail "$arch" "group gwmo-agent-conf missing after install"; fi

  t=$(now)
  local printed
  printed="$(chroot "$dir" /usr/bin/gwmo-agent --version 2>&1)" || true
  local version_s; version_s=$(since "$t")
  if [ "$printed" = "$version" ]; then pass "$arch" "gwmo-agent --version = $printed (${version_s}s)"
  else fail "$arch" "gwmo-agent --version printed '$printed', expected '$version'"; fi

  # The device: its config and factory bootstrap, then the agent as the unit would run it.
  local source_cfg="$QEMU_DIR/device-config.json"
  [ -f "$E2E_CONFIG" ] && source_cfg="$E2E_CONFIG"
  cfg="$(node "$QEMU_DIR/device-config.mjs" "$dir" "$broker" "$source_cfg")"
  device_id="$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).deviceId' "$cfg")"
  prefix="$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).topicPrefix ?? "omadm/v1"' "$cfg")"
  log="$work/$arch-agent.log"
  t=$(now)
  chroot "$dir" /usr/bin/env -i PATH=/usr/bin:/bin /usr/bin/gwmo-agent --config /etc/gwmo-agent/config.json \
    > "$log" 2>&1 &
  agent_pid=$!
  pids+=("$agent_pid")
  # Wait for the retained online, or for the agent to exit first (a crash or a configuration error).
  node "$QEMU_DIR/await-status.mjs" "$broker" "$device_id" online $((10 * SCALE)) "$prefix" > "$work/$arch-online" 2>&1 &
  local waiter=$!
  pids+=("$waiter")
  while kill -0 "$waiter" 2>/dev/null && kill -0 "$agent_pid" 2>/dev/null; do sleep 0.2; done
  if ! kill -0 "$agent_pid" 2>/dev/null; then
    kill "$waiter" 2>/dev/null || true
    status=0
    wait "$agent_pid" || status=$?
    fail "$arch" "agent exited $status before going online; log: $(tail -n 5 "$log" | tr '\n' ' ')"
    return
  fi
  if wait "$waiter"; then
    online_s=$(since "$t")
    pass "$arch" "agent published retained online (${online_s}s after start)"
  else
    fail "$arch" "no retained online: $(cat "$work/$arch-online"); log: $(tail -n 5 "$log" | tr '\n' ' ')"
    online_s=-
  fi

  if [ -f "$E2E_FLOW" ]; then
    t=$(now)
    if GWMO_E2E_BROKER_URL="$broker" GWMO_E2E_DEVICE_ID="$device_id" GWMO_E2E_TOPIC_PREFIX="$prefix" \
        GWMO_E2E_CONFIG="$cfg" GWMO_E2E_ROOTFS="$dir" GWMO_E2E_AGENT_LOG="$log" \
        GWMO_E2E_TIMEOUT_SCALE="$SCALE" GWMO_E2E_ARCH="$arch" \
        node "$E2E_FLOW" > "$work/$arch-e2e.log" 2>&1; then
      pass "$arch" "end-to-end $(basename "$E2E_FLOW") ($(since "$t")s)"
    else
      fail "$arch" "end-to-end $(basename "$E2E_FLOW"):"
      sed 's/^/    /' "$work/$arch-e2e.log" | tail -n 40
    fi
  else
    say "NOTE $arch: no end-to-end hook at $E2E_FLOW"
  fi

  # binding.md §2 and the unit's stop: SIGTERM publishes the retained offline and exits 0.
  t=$(now)
  kill -TERM "$agent_pid" 2>/dev/null || true
  status=0
  wait "$agent_pid" || status=$?
  if [ "$status" = 0 ]; then pass "$arch" "SIGTERM: agent exited 0 ($(since "$t")s)"
  else fail "$arch" "SIGTERM: agent exited $status; log: $(tail -n 5 "$log" | tr '\n' ' ')"; fi
  if node "$QEMU_DIR/await-status.mjs" "$broker" "$device_id" offline $((2 * SCALE)) "$prefix" >/dev/null; then
    pass "$arch" "retained offline after SIGTERM"
  else
    fail "$arch" "no retained offline after SIGTERM"
  fi
  summary+=("$arch  rootfs ${rootfs_s}s ($cold)  unpack ${unpack_s}s  --version ${version_s}s  online ${online_s}s")
}

for arch in "${archs[@]}"; do
  qemu_name "$arch" >/dev/null
  run_arch "$arch"
done

printf '%s\n' "timings:" "${summary[@]/#/  }"
if [ "$failures" -gt 0 ]; then
  printf 'FAIL qemu: %d check(s) failed\n' "$failures"
  exit 1
fi
printf 'PASS qemu: %s\n' "${archs[*]}"
