#!/usr/bin/env bash
# Installs the .deb into emulated ARM Debian root file systems and runs the agent there against a private
# mosquitto on the host's 127.0.0.1 (a chroot shares the host's network). What `npm run test:qemu` runs.
#   targets/qemu/run.sh [ARCH...]          ARCH: arm64, armhf (default: both); root only
#
# For each architecture, on a broker of its own: the cached rootfs (build-rootfs.sh) is unpacked into a
# temporary folder, the .deb is installed with dpkg inside it, `gwmo-agent --version` must print the package
# version, then
#   1. the agent runs as the unit would run it (/usr/bin/gwmo-agent, the test config device-config.json with
#      factory-bootstrap.xml): its retained `online` must appear; while it runs, `gwmo-agent tree` in the rootfs
#      must list ./DevDetail/SwV = the rootfs's /etc/os-release PRETTY_NAME, FwV = the emulated `uname -r` (the
#      host's kernel under qemu-user), HwV = the board the chroot sees (device tree or DMI, else ""), Man = the
#      configuration's, the agent's version, and every secret as (secret); SIGTERM must leave a retained
#      `offline` and exit status 0;
#   2. the demo's whole GwMO story (`dist/demo.js`, its 9 steps, with its DM Server, gateway and bootstrap
#      server native on the host) runs with the installed bundle, /usr/lib/gwmo-agent/gwmo-agent.js, under the
#      emulated /usr/bin/node: its --runtime is a wrapper that execs `chroot ROOTFS /usr/bin/node`, so the
#      demo's SIGTERM reaches the emulated node. Every step must pass, the agent's start line must name the
#      rootfs's node, and its stop must log `stopped` and leave a retained `offline`.
# The demo and the emulated agent see the same absolute paths (the agent bundle, the demo's temporary folder
# with the agent's config, state and location file): inside the rootfs, the rootfs's own host path is a
# relative symlink to its root, and the demo's TMPDIR is the rootfs's /tmp.
#
# The emulated node is 10-14 times slower than the host's: every timeout is multiplied by
# GWMO_QEMU_TIMEOUT_SCALE (default 12; 1 to 100): the status waits here, and through the demo's --time-scale its
# step timeout, its quiet spell, the agent's session timers and the grace before SIGKILL. Nothing is skipped.
#
# Environment: GWMO_QEMU_TIMEOUT_SCALE, GWMO_QEMU_KEEP=1 keeps the unpacked roots,
# GWMO_QEMU_BUNDLE=FILE packages that prebuilt bundle instead of building src/,
# GWMO_QEMU_CACHE / GWMO_QEMU_MIRROR / GWMO_QEMU_REBUILD as in build-rootfs.sh.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(arm64 armhf)
SCALE="${GWMO_QEMU_TIMEOUT_SCALE:-12}"
[[ "$SCALE" =~ ^[1-9][0-9]*$ ]] && [ "$SCALE" -le 100 ] || die "GWMO_QEMU_TIMEOUT_SCALE must be a whole number, 1 to 100, not '$SCALE'"
require_root
ensure_host_tools

failures=0
summary=()
pass() { printf 'PASS %s: %s\n' "$1" "$2"; }
fail() { printf 'FAIL %s: %s\n' "$1" "$2"; failures=$((failures + 1)); }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
tail_of() { tail -n "${2:-5}" "$1" | tr '\n' ' '; }

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

# --- the package under test, and the demo that drives it -------------------------------------------------
started=$(now)
node "$PROJECT_ROOT/build/bundle.mjs" >/dev/null
if [ -n "${GWMO_QEMU_BUNDLE:-}" ]; then
  deb="$(node "$PROJECT_ROOT/build/package-deb.mjs" --out "$work" --bundle "$GWMO_QEMU_BUNDLE")"
else
  deb="$(node "$PROJECT_ROOT/build/package-deb.mjs" --out "$work")"
fi
demo="$PROJECT_ROOT/dist/demo.js"
version="$(node -p 'require(process.argv[1]).version' "$PROJECT_ROOT/package.json")"
say "package: $(basename "$deb") built in $(since "$started")s"

# A private mosquitto on the host's loopback, reachable from every chroot; one per architecture, so that no
# retained status of an earlier architecture's device can answer for a later one. Sets `broker` to its URL;
# called directly, never in $(...), whose subshell would keep the broker's pid from `pids` and leak it.
start_broker() {
  local name="$1" port
  port="$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })')"
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" > "$work/$name-mosquitto.conf"
  mosquitto -c "$work/$name-mosquitto.conf" > "$work/$name-mosquitto.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do
    node -e 'require("net").connect(+process.argv[1], "127.0.0.1").on("connect", () => process.exit(0)).on("error", () => process.exit(1))' "$port" && break
    sleep 0.1
  done
  broker="mqtt://127.0.0.1:$port"
}

# The value of URI in a `gwmo-agent tree` listing (tab-separated; a text value is a JSON string).
tree_value() {
  node -e 'const [file, uri] = process.argv.slice(1)
    for (const line of require("fs").readFileSync(file, "utf8").split("\n")) {
      const f = line.split("\t")
      if (f[0] === uri && f.length === 5) { process.stdout.write(f[4].startsWith("\"") ? JSON.parse(f[4]) : ""); process.exit(0) }
    }
    process.exit(1)' "$1" "$2"
}

# The first NUL- or newline-separated string of a file, trimmed; nothing when it cannot be read.
first_string() { [ -r "$1" ] && tr '\0' '\n' < "$1" 2>/dev/null | head -n 1 | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' || true; }

# binding.md §8 on the emulated device: `gwmo-agent tree` in the rootfs lists ./DevDetail and ./DevInfo/Man, and
# each value must be what the rootfs shows its programs. SwV is the rootfs's own /etc/os-release PRETTY_NAME.
# FwV is the kernel release the emulated `uname -r` gives: under qemu-user that is the host's kernel (no ARM
# kernel runs), so it is checked against the chroot's uname, not against an ARM kernel. HwV is the board a
# program in the chroot sees (/proc and /sys are the host's, bind-mounted: its device tree model, else its DMI
# product name, else the default ""). Man is device-config.json's devInfo.man: the configuration wins.
check_description() {
  local arch="$1" dir="$2" listing="$work/$1-tree" expected actual uri
  if ! chroot "$dir" /usr/bin/env -i PATH=/usr/bin:/bin /usr/bin/gwmo-agent tree --config /etc/gwmo-agent/config.json \
      > "$listing" 2> "$listing.err"; then
    fail "$arch" "gwmo-agent tree: $(tail_of "$listing.err")"
    return
  fi
  pass "$arch" "gwmo-agent tree listed $(grep -c '^\.' "$listing") nodes while the agent ran"
  local -A want=(
    [./DevDetail/SwV]="$(. "$dir/etc/os-release" && printf '%s' "${PRETTY_NAME:-}")"
    [./DevDetail/FwV]="$(chroot "$dir" /bin/uname -r)"
    [./DevDetail/HwV]="$(first_string "$dir/proc/device-tree/model")"
    [./DevInfo/Man]="$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).devInfo.man' "$QEMU_DIR/device-config.json")"
    [./DevDetail/Ext/GwmoAgent/Version]="$version"
  )
  [ -n "${want[./DevDetail/HwV]}" ] || want[./DevDetail/HwV]="$(first_string "$dir/sys/class/dmi/id/product_name")"
  for uri in ./DevDetail/SwV ./DevDetail/FwV ./DevDetail/HwV ./DevInfo/Man ./DevDetail/Ext/GwmoAgent/Version; do
    expected="${want[$uri]}"
    if ! actual="$(tree_value "$listing" "$uri")"; then fail "$arch" "$uri: not in the listing"; continue; fi
    if [ "$actual" = "$expected" ]; then pass "$arch" "$uri = '$actual'"
    else fail "$arch" "$uri = '$actual', expected '$expected'"; fi
  done
  # The chroot cannot read the host's os-release; when the two read alike, the value alone cannot show it.
  if [ "$(. /etc/os-release 2>/dev/null && printf '%s' "${PRETTY_NAME:-}")" = "${want[./DevDetail/SwV]}" ]; then
    say "$arch: note: the host's PRETTY_NAME is the rootfs's too"
  fi
  # Secrets are listed as (secret), never by value.
  local shown
  shown="$(awk -F '\t' '$1 ~ /\/AAuth(Secret|Data)$/ && $5 != "(secret)"' "$listing")"
  if [ -z "$shown" ] && grep -qP '/AAuthSecret\t' "$listing"; then pass "$arch" "gwmo-agent tree: every AAuthSecret and AAuthData as (secret)"
  else fail "$arch" "gwmo-agent tree: secrets not hidden or not listed: ${shown:0:200}"; fi
}

# --- one architecture ------------------------------------------------------------------------------------
run_arch() {
  local arch="$1" t0 t cold rootfs dir cfg device_id prefix agent_pid log status online_s broker
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
  # Inside the rootfs, its host path leads back to its root, so that a host path under $dir names the same file
  # for the demo on the host and for the agent in the chroot. Relative, so it stays inside $dir on the host.
  mkdir -p "$dir$(dirname "$dir")"
  ln -s "$(realpath -m --relative-to="$(dirname "$dir")" /)" "$dir$dir"
  local unpack_s; unpack_s=$(since "$t")
  start_broker "$arch"
  say "$arch: broker $broker"

  t=$(now)
  cp "$deb" "$dir/tmp/"
  if chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg -i "/tmp/$(basename "$deb")" \
      > "$work/$arch-dpkg.log" 2>&1; then
    pass "$arch" "dpkg -i $(basename "$deb") ($(since "$t")s)"
  else
    fail "$arch" "dpkg -i: $(tail_of "$work/$arch-dpkg.log")"
    return
  fi
  local install_s; install_s=$(since "$t")
  if chroot "$dir" getent group gwmo-agent-conf >/dev/null; then pass "$arch" "postinst created group gwmo-agent-conf"
  else fail "$arch" "group gwmo-agent-conf missing after install"; fi

  t=$(now)
  local printed
  printed="$(chroot "$dir" /usr/bin/gwmo-agent --version 2>&1)" || true
  local version_s; version_s=$(since "$t")
  if [ "$printed" = "$version" ]; then pass "$arch" "gwmo-agent --version = $printed (${version_s}s)"
  else fail "$arch" "gwmo-agent --version printed '$printed', expected '$version'"; fi

  # 1. The device: its config and factory bootstrap, then the agent as the unit would run it.
  cfg="$(node "$QEMU_DIR/device-config.mjs" "$dir" "$broker" "$QEMU_DIR/device-config.json")"
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
    fail "$arch" "agent exited $status before going online; log: $(tail_of "$log")"
    return
  fi
  if wait "$waiter"; then
    online_s=$(since "$t")
    pass "$arch" "agent published retained online (${online_s}s after start)"
  else
    fail "$arch" "no retained online: $(cat "$work/$arch-online"); log: $(tail_of "$log")"
    online_s=-
  fi

  # binding.md §8: the device describes itself, read in the rootfs while the agent runs (`gwmo-agent tree` is
  # read-only and safe beside it).
  check_description "$arch" "$dir"

  # binding.md §2 and the unit's stop: SIGTERM publishes the retained offline and exits 0.
  t=$(now)
  kill -TERM "$agent_pid" 2>/dev/null || true
  status=0
  wait "$agent_pid" || status=$?
  if [ "$status" = 0 ]; then pass "$arch" "SIGTERM: agent exited 0 ($(since "$t")s)"
  else fail "$arch" "SIGTERM: agent exited $status; log: $(tail_of "$log")"; fi
  if node "$QEMU_DIR/await-status.mjs" "$broker" "$device_id" offline $((2 * SCALE)) "$prefix" >/dev/null; then
    pass "$arch" "retained offline after SIGTERM"
  else
    fail "$arch" "no retained offline after SIGTERM"
  fi

  # 2. The demo's whole GwMO story with the installed bundle under the emulated node.
  local runtime="$work/$arch-node" demo_log="$work/$arch-demo.log" node_version demo_s=- steps_s=-
  node_version="$(chroot "$dir" /usr/bin/node --version)"
  printf '#!/bin/sh\n# The demo'"'"'s --runtime for %s: node inside the rootfs; exec, so its signals reach node.\nexec /usr/sbin/chroot %q /usr/bin/node "$@"\n' \
    "$arch" "$dir" > "$runtime"
  chmod 0755 "$runtime"
  t=$(now)
  status=0
  TMPDIR="$dir/tmp" node "$demo" --verbose --broker "$broker" --time-scale "$SCALE" \
    --agent "$dir/usr/lib/gwmo-agent/gwmo-agent.js" --runtime "$runtime" > "$demo_log" 2>&1 || status=$?
  demo_s=$(since "$t")
  local steps_line
  steps_line="$(grep -E '^All [0-9]+ steps done in ' "$demo_log" || true)"
  if [ "$status" = 0 ] && [ -n "$steps_line" ]; then
    steps_s="$(sed -E 's/^All [0-9]+ steps done in ([0-9.]+) s.*/\1/' <<<"$steps_line")"
    local n
    for n in $(seq 9); do
      grep -q "^   ✓ step $n: " "$demo_log" || fail "$arch" "demo: no '✓ step $n' line"
    done
    pass "$arch" "demo: ${steps_line%% (*} (${demo_s}s with the demo's start)"
  else
    fail "$arch" "demo exited $status: $(grep -E '✗ step|FAILED|could not start|the agent exited' "$demo_log" | tr '\n' ' ')"
    sed 's/^/    /' "$demo_log" | tail -n 60
  fi
  # The agent that ran the story is the rootfs's node running the installed bundle, not the host's node.
  if grep -qE "agent info  started .*runtime=node ${node_version#v}( |$)" "$demo_log"; then
    pass "$arch" "demo: the agent ran on the rootfs's node ${node_version#v}"
  else
    fail "$arch" "demo: no start line with runtime=node ${node_version#v}"
  fi
  # The demo stops its agent with SIGTERM: it must stop cleanly (its last log line) and leave a retained offline.
  if grep -qE '^      agent info  stopped$' "$demo_log"; then pass "$arch" "demo: SIGTERM, the agent logged stopped"
  else fail "$arch" "demo: the agent did not log stopped after SIGTERM: $(grep -E 'agent (error|warn)' "$demo_log" | tail -n 3 | tr '\n' ' ')"; fi
  local demo_device
  demo_device="$(sed -n 's/^GwMO End Device demo: device \([^,]*\),.*/\1/p' "$demo_log")"
  if node "$QEMU_DIR/await-status.mjs" "$broker" "$demo_device" offline $((2 * SCALE)) >/dev/null; then
    pass "$arch" "demo: retained offline after the agent stopped"
  else
    fail "$arch" "demo: no retained offline for $demo_device after the agent stopped"
  fi
  summary+=("$arch  rootfs ${rootfs_s}s ($cold)  unpack ${unpack_s}s  install ${install_s}s  --version ${version_s}s  online ${online_s}s  demo ${demo_s}s (9 steps ${steps_s}s)")
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
