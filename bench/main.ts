/**
 * The benchmarks (`npm run bench`, see README.md): every figure against a floor measured in the same run, on
 * the same private mosquitto; median of the runs after a warm-up, min and max shown. Prints one Markdown table
 * and writes it to bench/results/latest.md. Figures, never pass/fail.
 *
 * Options: --runs N (default 5), --devices N (fleet, default 10000), --snapshot-devices N (heap summary by
 * constructor, default 1000, 0 for none), --connections K (fleet, default 1), --detect-window N (detection
 * flows in flight at once, default 1000, 0 for all at once), --skip-fleet, --skip-bun, --skip-store, --fleet-only,
 * --store-only, --idle-seconds N (the idle cost's whole window, default 60), --only LIST (sections by key, comma
 * separated: store sizes start exchanges idle stages restarts codec fitting exec fumo http arm64 fleet),
 * --fleet-processes K (the fleet's devices shared among K simulator processes on the one broker, default 1).
 */
import { execFileSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, cpus, tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { parseArgs } from 'node:util'
import { gzipSync } from 'node:zlib'
import { startMosquitto } from '../test/helpers/mosquitto.ts'
import { startDmServer, type DmServer } from '../test/peers/dm-server.ts'
import { startGateway, type Gateway } from '../test/peers/gateway.ts'
import { gatewayOptions, overHttp, SERVER_B, serverOptions, type PartySpec } from '../test/fixtures/gwmo/parties.ts'
import { agentSetup, BENCH_PARTIES } from './lib/agent-setup.ts'
import { run } from './lib/processes.ts'
import { summarize, type Summary } from './lib/stats.ts'
import { Watcher } from './lib/watch.ts'
import { codecThroughput } from './figures/codec.ts'
import { fittingCost } from './figures/fitting.ts'
import { childPid, measureFleet, type FleetFigures } from './figures/fleet.ts'
import { detectionRoundTrips, echoRoundTrips } from './figures/roundtrip.ts'
import { echoSessionTimes, sessionTimes } from './figures/sessions.ts'
import { measureIdle } from './figures/idle.ts'
import { monotonicUs, profileDir, readProfile, STAGES, stagesOfProfile, straceCounts } from './figures/profile.ts'
import { measureStart } from './figures/start.ts'
import { storeFigures, type ChangeFigures } from './figures/store.ts'
import { DOWN_MS, KILL_WITHIN_MS, measureReconnect } from './figures/reconnect.ts'
import { execTimes, spawnTimes, trueObject } from './figures/exec.ts'
import { curlTimes, downloadTimes, RECORDING_MODULE, startPackageServer } from './figures/fumo.ts'

const { values } = parseArgs({
  options: {
    root: { type: 'string' },
    out: { type: 'string' },
    runs: { type: 'string', default: '5' },
    devices: { type: 'string', default: '10000' },
    'snapshot-devices': { type: 'string', default: '1000' },
    connections: { type: 'string', default: '1' },
    'detect-window': { type: 'string', default: '1000' },
    'skip-fleet': { type: 'boolean', default: false },
    'skip-bun': { type: 'boolean', default: false },
    'fleet-only': { type: 'boolean', default: false },
    'skip-store': { type: 'boolean', default: false },
    'store-only': { type: 'boolean', default: false },
    'idle-seconds': { type: 'string', default: '60' },
    only: { type: 'string' },
    'fleet-processes': { type: 'string', default: '1' },
  },
})
const root = values.root!
const out = values.out!
const runs = Math.max(5, Number(values.runs))
const rows: string[][] = []
const notes: string[] = []
/** Figures that could not be measured (or measured a failure): the bench exits non-zero when there is one. */
const failures: string[] = []
const log = (line: string) => process.stderr.write(`bench: ${line}\n`)

/**
 * mosquitto for a simulated fleet: one connection carries every device's topics, so a burst toward all devices
 * (a Detection Alert to each) queues one message per device for that one client, and the fleet peers' two
 * connections get one per device back. mosquitto's default of 1000 queued messages a client drops the rest
 * ("Outgoing messages are being dropped"); the sessions would then wait for their time-outs. No limit here:
 * the bench's broker serves the bench alone.
 */
const BROKER_SETTINGS = ['max_queued_messages 0']
/** How long any one phase of a fleet figure (start, factory sessions, detection, heap) may take. */
const FLEET_PHASE_TIMEOUT_MS = 300_000

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a')
const cell = (s: Summary, digits = 1, unit = '') => `${fmt(s.median, digits)}${unit} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`
const row = (figure: string, agent: string, floor: string, result: string, target: string) => {
  // A figure without a single sample (every run of a program failed to report) is a failure, not a figure.
  if (/n\/a/.test(agent + floor)) failures.push(`${figure}: no sample`)
  rows.push([figure, agent, floor, result, target])
}

async function sizes(): Promise<void> {
  const agent = readFileSync(join(root, 'dist', 'gwmo-agent.js'))
  const floor = readFileSync(join(out, 'floor.js'))
  const kb = (n: number) => n / 1024
  const [agentGz, floorGz] = [gzipSync(agent).length, gzipSync(floor).length]
  row('Bundle, raw', `${fmt(kb(agent.length))} KB`, `${fmt(kb(floor.length))} KB`, `+${fmt(kb(agent.length - floor.length))} KB (×${fmt(agent.length / floor.length, 2)})`, '')
  row('Bundle, gzip', `${fmt(kb(agentGz))} KB`, `${fmt(kb(floorGz))} KB`, `+${fmt(kb(agentGz - floorGz))} KB`, '≤ floor + 20 KB')
}

async function starts(brokerUrl: string, watcher: Watcher): Promise<void> {
  const runtimes: Array<[string, string]> = [['Node', process.execPath]]
  if (!values['skip-bun']) runtimes.push(['Bun', join(root, 'node_modules', 'bun', 'bin', 'bun.exe')])
  for (const [name, binary] of runtimes) {
    const setup = agentSetup(brokerUrl, `mac:02-be-00-00-00-0${name === 'Node' ? 1 : 2}`, { location: { enabled: true } })
    log(`start and RSS on ${name}`)
    // The warm-up run is the first start (factory bootstrap); the measured ones are restarts, as a device lives.
    const agent = await measureStart(watcher, setup.statusTopic, binary, [join(root, 'dist', 'gwmo-agent.js'), '--config', setup.configPath], { runs, warmup: 1 })
    const floorId = `start-${name.toLowerCase()}`
    const floor = await measureStart(watcher, `floor/${floorId}/status`, binary, [join(out, 'floor.js'), brokerUrl, floorId], { runs, warmup: 1 })
    row(`Start → subscribed, ${name}`, cell(agent.startMs, 0, ' ms'), cell(floor.startMs, 0, ' ms'), `×${fmt(agent.startMs.median / floor.startMs.median, 2)}`, '≤ 1.1× floor')
    const mb = (s: Summary) => ({ ...s, median: s.median / 1024, min: s.min / 1024, max: s.max / 1024 })
    row(`Peak RSS, ${name}`, cell(mb(agent.peakRssKb), 1, ' MB'), cell(mb(floor.peakRssKb), 1, ' MB'), `+${fmt((agent.peakRssKb.median - floor.peakRssKb.median) / 1024)} MB`, '≤ floor + 5 MB')
  }
}

async function exchanges(brokerUrl: string, watcher: Watcher): Promise<void> {
  // The detection samples come faster than a gateway's six a minute (limits.detectionsPerMinute): the bench
  // measures the answer, not the bound, which has its own tests.
  const setup = agentSetup(brokerUrl, 'mac:02-be-00-00-00-10', { location: { enabled: false }, limits: { detectionsPerMinute: 6000 } })
  const server = await startDmServer(serverOptions(brokerUrl, setup.deviceId, BENCH_PARTIES.server))
  const gateway = await startGateway(gatewayOptions(brokerUrl, setup.deviceId, BENCH_PARTIES.gateway))
  const agent = run(process.execPath, [join(root, 'dist', 'gwmo-agent.js'), '--config', setup.configPath])
  const floor = run(process.execPath, [join(out, 'floor.js'), brokerUrl, 'echo'])
  try {
    for (const party of [server, gateway]) await party.waitForSession((s) => s.origin === 'device' && s.closed, 60_000)
    log('detection round trip')
    const samples = { runs: Math.max(20, runs), warmup: 5 }
    const detection = await detectionRoundTrips(gateway, watcher, { deviceId: setup.deviceId, gatewayId: BENCH_PARTIES.gateway.serverId }, samples)
    await watcher.subscribe('floor/echo/status')
    const echo = await echoRoundTrips(watcher, 'echo', detection.bytes, samples)
    row('DDA → Bootstrapped DMS List, Node', cell(detection.ms, 2, ' ms'), cell(echo, 2, ' ms'), `×${fmt(detection.ms.median / echo.median, 2)}`, '≤ 1.2× echo floor')
    notes.push(
      `Detection round trip: ${samples.runs} samples after ${samples.warmup} warm-up; Device Detection Alert of ${detection.bytes} bytes, echoed at that size by the floor; ` +
        `both timed on the wire by one observer (request delivered → answer delivered). Seen from the gateway peer, which also builds the alert and checks the answer: ${cell(detection.peerMs, 2, ' ms')}.`,
    )
    log('DM sessions')
    const sessions = await sessionTimes(server, samples)
    const echoSessions = await echoSessionTimes(watcher, 'echo', sessions.package1Bytes, samples)
    const perSecond = (ms: number) => fmt(1000 / ms, 0)
    row('DM session P0→P4 (auth-md5, one at a time), Node', `${cell(sessions.ms, 2, ' ms')} = ${perSecond(sessions.ms.median)}/s`, `${cell(echoSessions, 2, ' ms')} = ${perSecond(echoSessions.median)}/s`, `×${fmt(echoSessions.median / sessions.ms.median, 2)} of the floor's rate`, '≥ ×0.5')
    notes.push(`DM sessions: ${samples.runs} after ${samples.warmup} warm-up, one at a time, 250 ms apart (the device answers a party's refused messages at most 5 a second, and each new session of the server's begins with one, binding.md §6); floor = two echoed round trips of Package 1's size (${sessions.package1Bytes} bytes) per session.`)
  } finally {
    await Promise.all([agent.stop(), floor.stop()])
    await Promise.all([server.stop(), gateway.stop()])
  }
}

/**
 * Where the detection's and the session's time goes: the same exchanges against the unminified agent under a CPU
 * profile and strace, each stage's CPU per exchange (bench/figures/profile.ts).
 */
async function stages(brokerUrl: string, watcher: Watcher): Promise<void> {
  const samples = { runs: Math.max(40, runs), warmup: 5 }
  const exchanges = samples.runs + samples.warmup
  // One agent under the profiler, another (the shipped bundle) under strace: each would distort the other.
  const profiled = await withAgent(brokerUrl, 'mac:02-be-00-00-00-30', (configPath, dir) => ['--cpu-prof', `--cpu-prof-dir=${dir}`, join(out, 'agent-profile.js'), '--config', configPath], async (server, gateway, deviceId) => {
    log('profile by stage: detections')
    const detectFrom = monotonicUs()
    await detectionRoundTrips(gateway, watcher, { deviceId, gatewayId: BENCH_PARTIES.gateway.serverId }, samples)
    const detectTo = monotonicUs()
    log('profile by stage: sessions')
    await sessionTimes(server, samples)
    return { detectFrom, detectTo, sessionFrom: detectTo, sessionTo: monotonicUs() }
  })
  const profile = readProfile(profiled.dir)
  const bundle = join(out, 'agent-profile.js')
  const detection = stagesOfProfile(profile, bundle, profiled.result.detectFrom, profiled.result.detectTo)
  const session = stagesOfProfile(profile, bundle, profiled.result.sessionFrom, profiled.result.sessionTo)
  const traced = await withAgent(brokerUrl, 'mac:02-be-00-00-00-31', (configPath) => [join(root, 'dist', 'gwmo-agent.js'), '--config', configPath], async (_server, gateway, deviceId, pid) => {
    log('system calls: detections')
    const trace = straceCounts(pid)
    await detectionRoundTrips(gateway, watcher, { deviceId, gatewayId: BENCH_PARTIES.gateway.serverId }, samples)
    return trace.stop()
  })
  const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0)
  const perExchange = (ms: number) => fmt(ms / exchanges, 3)
  const share = (ms: number, all: number) => `${fmt((100 * ms) / all, 0)} %`
  row('Agent CPU per detection (profiled, unminified build), Node', `${perExchange(total(detection))} ms`, '—', 'by stage in the note', '')
  row('Agent CPU per DM session (profiled, unminified build), Node', `${perExchange(total(session))} ms`, '—', 'by stage in the note', '')
  notes.push(
    '',
    `Agent CPU by stage (V8 CPU profile of the unminified build over ${exchanges} detections, then ${exchanges} DM sessions, paced as above; ms per exchange and share; idle time left out):`,
    '',
    '| stage | detection | | DM session | |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...STAGES.map((stage) => `| ${stage} | ${perExchange(detection.get(stage)!)} ms | ${share(detection.get(stage)!, total(detection))} | ${perExchange(session.get(stage)!)} ms | ${share(session.get(stage)!, total(session))} |`),
    '',
    `System calls of the shipped agent over ${exchanges} detections, per detection (strace -c -f, without the profiler; time as strace counts it, its own overhead included): ` +
      traced.result.slice(0, 8).map((s) => `${s.call} ${fmt(s.calls / exchanges, 1)} × ${fmt((s.seconds * 1000) / exchanges, 3)} ms`).join(', ') + '.',
    '',
  )
}

/**
 * An agent of its own with its two parties, its first sessions over, for `work`; stopped after it (a profile is
 * written at its exit, into `dir`).
 */
async function withAgent<T>(
  brokerUrl: string,
  deviceId: string,
  args: (configPath: string, dir: string) => string[],
  work: (server: DmServer, gateway: Gateway, deviceId: string, pid: number) => Promise<T>,
): Promise<{ result: T; dir: string }> {
  const setup = agentSetup(brokerUrl, deviceId, { location: { enabled: false }, limits: { detectionsPerMinute: 6000 } })
  const server = await startDmServer(serverOptions(brokerUrl, setup.deviceId, BENCH_PARTIES.server))
  const gateway = await startGateway(gatewayOptions(brokerUrl, setup.deviceId, BENCH_PARTIES.gateway))
  const dir = profileDir()
  const agent = run(process.execPath, args(setup.configPath, dir))
  try {
    for (const party of [server, gateway]) await party.waitForSession((s) => s.origin === 'device' && s.closed, 60_000)
    const result = await work(server, gateway, setup.deviceId, agent.child.pid!)
    return { result, dir }
  } finally {
    await agent.stop()
    await Promise.all([server.stop(), gateway.stop()])
  }
}

/**
 * An idle agent as a device runs it (location polling on, its default period; keepalive; timers) beside the idle
 * floor client, both started, online and left alone: CPU seconds per hour and wakeups per minute.
 */
async function idle(brokerUrl: string, watcher: Watcher): Promise<void> {
  const setup = agentSetup(brokerUrl, 'mac:02-be-00-00-00-20')
  const floorId = 'idle'
  await watcher.subscribe(`floor/${floorId}/status`)
  const floorOnline = watcher.next(`floor/${floorId}/status`, (p) => p.toString() === 'online', 60_000)
  const server = await startDmServer(serverOptions(brokerUrl, setup.deviceId, BENCH_PARTIES.server))
  const gateway = await startGateway(gatewayOptions(brokerUrl, setup.deviceId, BENCH_PARTIES.gateway))
  const agent = run(process.execPath, [join(root, 'dist', 'gwmo-agent.js'), '--config', setup.configPath])
  const floor = run(process.execPath, [join(out, 'floor.js'), brokerUrl, floorId])
  try {
    // Idle as a device lives: its first sessions with its parties are over, nothing is pending.
    for (const party of [server, gateway]) await party.waitForSession((s) => s.origin === 'device' && s.closed, 60_000)
    await floorOnline
    const seconds = Math.max(10, Number(values['idle-seconds']))
    log(`idle cost (${seconds} s)`)
    const figures = await measureIdle({ agent: agent.child.pid!, floor: floor.child.pid! }, { windows: runs, windowMs: (seconds * 1000) / runs, settleMs: 3000 })
    const a = figures.agent!
    const f = figures.floor!
    row('Idle: CPU seconds per hour, Node', cell(a.cpuSecondsPerHour, 1, ' s'), cell(f.cpuSecondsPerHour, 1, ' s'), `+${fmt(a.cpuSecondsPerHour.median - f.cpuSecondsPerHour.median)} s`, '')
    row('Idle: wakeups per minute, Node', cell(a.wakeupsPerMinute, 0), cell(f.wakeupsPerMinute, 0), `${a.wakeupsPerMinute.median >= f.wakeupsPerMinute.median ? '+' : ''}${fmt(a.wakeupsPerMinute.median - f.wakeupsPerMinute.median, 0)}/min`, '')
    notes.push(
      `Idle: ${runs} windows of ${fmt(seconds / runs, 0)} s, 3 s after the device's first sessions with its two parties ended; agent (location polling at its default 30 s, MQTT keepalive) and floor side by side. ` +
        'CPU from /proc/<pid>/stat (utime + stime in 10 ms ticks: one tick in a 12 s window reads as 3 s/h), a wakeup is a context switch of any of the process\'s threads (/proc/<pid>/task/*/status).',
    )
  } finally {
    await Promise.all([agent.stop(), floor.stop()])
    await Promise.all([server.stop(), gateway.stop()])
  }
}

/** An agent with the given parties (their first sessions over) for `work`, then stopped: its exit as `run` gives it. */
async function withParties<T>(
  brokerUrl: string,
  deviceId: string,
  servers: Array<{ spec: PartySpec; http?: boolean }>,
  extra: (dir: string, servers: DmServer[]) => Record<string, unknown>,
  work: (servers: DmServer[]) => Promise<T>,
): Promise<{ result: T; exit: Awaited<ReturnType<typeof run>['exited']> }> {
  const started: DmServer[] = []
  try {
    for (const { spec, http } of servers) started.push(await startDmServer({ ...serverOptions(brokerUrl, deviceId, spec), ...(http === true && { http: {} }) }))
    const specs = servers.map(({ spec, http }, k) => (http === true ? overHttp(spec, started[k]!.url) : spec))
    const setup = agentSetup(brokerUrl, deviceId, { location: { enabled: false } }, specs)
    const config = JSON.parse(readFileSync(setup.configPath, 'utf8')) as Record<string, unknown>
    writeFileSync(setup.configPath, JSON.stringify({ ...config, ...extra(setup.dir, started) }))
    const agent = run(process.execPath, [join(root, 'dist', 'gwmo-agent.js'), '--config', setup.configPath], { timed: true })
    let result: T
    try {
      for (const server of started) await server.waitForSession((s) => s.origin === 'device' && s.closed, 60_000)
      result = await work(started)
    } catch (error) {
      await agent.stop()
      throw error
    }
    return { result, exit: await agent.stop() }
  } finally {
    await Promise.all(started.map((s) => s.stop()))
  }
}

async function execs(brokerUrl: string): Promise<void> {
  log('async Exec of /bin/true')
  const samples = { runs: Math.max(20, runs), warmup: 5 }
  const spec = BENCH_PARTIES.server
  const { result } = await withParties(brokerUrl, 'mac:02-be-00-00-00-40', [{ spec }], () => ({ objects: [trueObject(spec.serverId)] }), ([server]) => execTimes(server!, samples))
  const floor = await spawnTimes(samples)
  row('Async Exec of /bin/true: server\'s Exec → result alert at the server, Node', cell(result.ms, 1, ' ms'), cell(floor, 2, ' ms'), `×${fmt(result.ms.median / floor.median, 0)}; +${fmt(result.ms.median - floor.median, 1)} ms`, '')
  notes.push(
    `Async Exec: an object \`${JSON.stringify(trueObject(spec.serverId))}\`, ${samples.runs} Execs after ${samples.warmup} warm-up, 250 ms apart; each pushed in a session of its own (401 + Chal first, binding.md §6), answered 202, ` +
      `the result in a Generic Alert of a client-initiated session. The pushed session alone (Exec → its close): ${cell(result.sessionMs, 1, ' ms')}. Floor: child_process.spawn of /bin/true to its exit, in the bench process.`,
  )
}

const MB = 2 ** 20
/** Throughput of `bytes` from times in ms: the median's, and the slowest and fastest run's. */
const throughput = (s: Summary, bytes: number): Summary => ({ median: bytes / MB / (s.median / 1000), min: bytes / MB / (s.max / 1000), max: bytes / MB / (s.min / 1000), runs: s.runs })

async function fumo(brokerUrl: string): Promise<void> {
  const big = 50 * MB
  const middle = 10 * MB
  const small = MB
  const packages = await startPackageServer([big, middle, small])
  try {
    const samples = { runs, warmup: 1 }
    const spec = BENCH_PARTIES.server
    const config = (dir: string) => {
      const module = join(dir, 'module')
      writeFileSync(module, RECORDING_MODULE)
      chmodSync(module, 0o755)
      return { fumo: { module, installer: 'direct', acl: `Get=*&Replace=${spec.serverId}&Exec=${spec.serverId}` } }
    }
    const download = (bytes: number, deviceId: string) => {
      log(`FUMO download of ${bytes / MB} MB`)
      return withParties(brokerUrl, deviceId, [{ spec }], config, ([server]) => downloadTimes(server!, packages.url(`/${bytes}`), samples))
    }
    const agentFrom = packages.transfers.length
    const agent = await download(big, 'mac:02-be-00-00-00-50')
    const agentTransfers = summarize(packages.transfers.slice(agentFrom + samples.warmup))
    const middleAgent = await download(middle, 'mac:02-be-00-00-00-51')
    const smallAgent = await download(small, 'mac:02-be-00-00-00-52')
    log('curl of the same package')
    const curlFrom = packages.transfers.length
    const curl = await curlTimes(packages.url(`/${big}`), samples)
    const curlTransfers = summarize(packages.transfers.slice(curlFrom + samples.warmup))
    const rate = throughput(agent.result, big)
    const floorRate = throughput(curl, big)
    row('FUMO Download of a 50 MB package: Exec → result alert, Node', cell(rate, 0, ' MB/s'), cell(floorRate, 0, ' MB/s'), `×${fmt(rate.median / floorRate.median, 2)} of curl's throughput`, '≥ ×0.9')
    const rss = (kb: number | undefined) => (kb === undefined ? NaN : kb / 1024)
    const [bigRss, middleRss, smallRss] = [agent, middleAgent, smallAgent].map((a) => rss(a.exit.peakRssKb)) as [number, number, number]
    const over = (mb: number) => `${mb >= smallRss ? '+' : ''}${fmt(mb - smallRss)} MB`
    row('FUMO Download: agent\'s peak RSS, 50 MB package (floor: the same agent, 1 MB package)', `${fmt(bigRss)} MB`, `${fmt(smallRss)} MB`, `${over(bigRss)} (10 MB package: ${fmt(middleRss)} MB, ${over(middleRss)})`, 'flat in the package\'s size')
    notes.push(
      `FUMO Download: ${samples.runs} Downloads after ${samples.warmup} warm-up, each pushed with its PkgURL (401 + Chal first, binding.md §6) and timed to the result alert (200); the agent writes the package under its state directory and hashes it. ` +
        `The package server's own view (request → response written): agent ${cell(agentTransfers, 0, ' ms')}, curl ${cell(curlTransfers, 0, ' ms')}. ` +
        `Peak RSS: GNU time over each agent's whole life (start, first session, ${samples.runs + samples.warmup} Downloads of the package).`,
    )
  } finally {
    await packages.stop()
  }
}

async function httpSessions(brokerUrl: string): Promise<void> {
  log('DM sessions over HTTP and over MQTT')
  const samples = { runs: Math.max(20, runs), warmup: 5 }
  const { result } = await withParties(
    brokerUrl,
    'mac:02-be-00-00-00-60',
    [{ spec: BENCH_PARTIES.server }, { spec: SERVER_B, http: true }],
    () => ({}),
    async ([mqtt, http]) => ({ mqtt: await sessionTimes(mqtt!, samples), http: await sessionTimes(http!, samples), posts: http!.requests.length }),
  )
  const { mqtt, http } = result
  row('DM session P0→P4 over HTTP (floor: the same over MQTT, same agent), Node', cell(http.ms, 2, ' ms'), cell(mqtt.ms, 2, ' ms'), `×${fmt(http.ms.median / mqtt.ms.median, 2)}`, '')
  notes.push(
    `DM sessions over HTTP: one agent with two DM Servers, one over MQTT and one over HTTP (Ext/GwmoAgent/Binding http, the peer's own node:http server, binding.md §10), the same session with each ` +
      `(DM Notification over the broker, then P1–P4; over HTTP each of the device's messages is a POST whose response is the server's next), ${samples.runs} after ${samples.warmup} warm-up, 250 ms apart; ${result.posts} POSTs in all.`,
  )
}

/**
 * Start → subscribed under emulated arm64 (qemu-user, the QEMU rootfs's own node), agent against the floor, when
 * targets/qemu/build-rootfs.sh has left its rootfs in the cache; skipped with the reason otherwise.
 */
async function arm64(brokerUrl: string, watcher: Watcher): Promise<void> {
  const cache = process.env.GWMO_QEMU_CACHE ?? join(root, 'targets', 'qemu', 'cache')
  const tarball = join(cache, 'rootfs-bookworm-arm64-r1.tar.gz')
  const qemu = ['/usr/bin/qemu-aarch64-static', '/usr/bin/qemu-aarch64'].find((q) => existsSync(q))
  const reason = !existsSync(tarball) ? `no rootfs at ${relative(root, tarball)} (targets/qemu/build-rootfs.sh arm64 makes it)` : qemu === undefined ? 'no qemu-aarch64(-static)' : undefined
  if (reason !== undefined) {
    log(`arm64 start skipped: ${reason}`)
    row('Start → subscribed, arm64 (qemu-user)', 'skipped', '—', reason, '')
    return
  }
  const rootfs = mkdtempSync(join(tmpdir(), 'gwmo-bench-arm64-'))
  try {
    execFileSync('tar', ['-xzf', tarball, '-C', rootfs, '--exclude=./dev/*', '--exclude=dev/*'], { stdio: 'ignore' })
    // qemu-user with the rootfs as its library prefix: the rootfs's node and its libraries, the host's files.
    const node = [qemu!, '-L', rootfs, join(rootfs, 'usr', 'bin', 'node')]
    const setup = agentSetup(brokerUrl, 'mac:02-be-00-00-00-70', { location: { enabled: false } })
    log('start under emulated arm64')
    const options = { runs, warmup: 1, onlineTimeoutMs: 120_000 }
    const agent = await measureStart(watcher, setup.statusTopic, node[0]!, [...node.slice(1), join(root, 'dist', 'gwmo-agent.js'), '--config', setup.configPath], options)
    const floor = await measureStart(watcher, 'floor/start-arm64/status', node[0]!, [...node.slice(1), join(out, 'floor.js'), brokerUrl, 'start-arm64'], options)
    row('Start → subscribed, arm64 (qemu-user)', cell(agent.startMs, 0, ' ms'), cell(floor.startMs, 0, ' ms'), `×${fmt(agent.startMs.median / floor.startMs.median, 2)}`, '≤ 1.1× floor')
    notes.push(`arm64: the rootfs's node (${execFileSync(node[0]!, [...node.slice(1), '--version'], { encoding: 'utf8' }).trim()}) under ${qemu} -L (user-mode emulation, some ten times slower than the host); same bundles as on the host.`)
  } finally {
    rmSync(rootfs, { recursive: true, force: true })
  }
}

async function restarts(): Promise<void> {
  log('broker restarts')
  const figures = await measureReconnect(join(root, 'dist', 'gwmo-agent.js'), join(out, 'floor.js'), { runs, warmup: 1 })
  const online = figures.onlineMs.median - figures.floorOnlineMs.median
  row('Broker restart → retained online again, Node', cell(figures.onlineMs, 0, ' ms'), cell(figures.floorOnlineMs, 0, ' ms'), `${online >= 0 ? '+' : ''}${fmt(online, 0)} ms`, '')
  row('Broker restart → queued Associated Gateway at the DM Server, Node', cell(figures.alertMs, 0, ' ms'), '—', `${figures.outstanding} of ${figures.restarts} restarts had it on its way at the kill`, '')
  notes.push(
    `Broker restarts: a broker of their own, killed within ${KILL_WITHIN_MS} ms of the device's answer to a Share=true detection reaching the gateway and started again ${DOWN_MS} ms later, ${runs} times after a warm-up; ` +
      'timed from mosquitto\'s start. The floor reconnects every second (MQTT.js\'s default period), the agent after random delays of at most 3 s; the DM Server peer reconnects every second too.',
  )
}

async function codec(): Promise<void> {
  log('codec throughput')
  const figures = await codecThroughput(root, { runs, warmup: 1, durationMs: 1000 })
  row(`Codec XML decode+encode, Package 2 (${figures.xmlBytes} B)`, cell(figures.xml, 0, '/s'), cell(figures.floor, 0, '/s'), `×${fmt(figures.xml.median / figures.floor.median, 2)}`, '')
  row(`Codec WBXML decode+encode, Package 2 (${figures.wbxmlBytes} B)`, cell(figures.wbxml, 0, '/s'), cell(figures.floor, 0, '/s'), `×${fmt(figures.wbxml.median / figures.floor.median, 2)}`, '')
}

async function store(): Promise<void> {
  log('durable state: bytes and syncs per change, restore')
  const f = await storeFigures({ runs })
  const bytes = (n: number) => (n >= 10240 ? `${fmt(n / 1024)} KB` : `${fmt(n, 0)} B`)
  const change = (what: string, c: ChangeFigures) =>
    row(`Bytes written per ${what}, tree of ${c.nodes} nodes`, bytes(c.averageBytes), bytes(c.floorBytes),
      `×${fmt(c.averageBytes / c.floorBytes, 1)}; one record ${bytes(c.recordBytes)}, ${c.checkpoints} checkpoint(s) of ${bytes(c.checkpointBytes)} in ${c.changes} changes; ${fmt(c.syncsPerChange, 2)} fsyncs each`,
      'flat in the tree\'s size')
  for (const c of f.replace) change('Replace of a short leaf', c)
  for (const c of f.alert) change('persisted Generic Alert', c)
  row('fsyncs per DM session replacing one leaf', fmt(f.session.syncs, 1), '—', `${bytes(f.session.bytes)} written (the change, the spent and fresh nonces)`, '')
  row('fsyncs per Device Detection Alert (Share true, 2 DM Servers)', fmt(f.detection.syncs, 1), '—', `${bytes(f.detection.bytes)} written (gateway mark, 2 alerts, location record)`, '')
  const r = f.restore
  row(`Restore, ${r.nodes}-node tree, ${bytes(r.checkpointBytes)} checkpoint + ${bytes(r.journalBytes)} journal`, cell(r.ms, 1, ' ms'), cell(r.floorMs, 2, ' ms'), `×${fmt(r.ms.median / r.floorMs.median, 0)}`, '')
  notes.push(
    'Durable state: a counting store (the bytes and fsyncs the store asks of a disk) under the real tree, agent state, session engine and GwMO layer; ' +
      'the floor of a change is its own bytes (path and value of the leaf; type and data of the alert); the average over the changes includes the checkpoints they caused. ' +
      'Restore: from a real disk, the store opened and the tree and agent state restored; floor: reading the two files.',
  )
}

async function fitting(): Promise<void> {
  log('reply fitting')
  const f = await fittingCost({ runs, warmup: 1, durationMs: 500 })
  row(`Reply fitting: 40 Gets of a 50 KB leaf under MaxMsgSize 64,000 (${fmt(f.wholeBytes / 1024, 0)} KB → ${fmt(f.replyBytes / 1024, 0)} KB)`,
    cell(f.compose, 2, ' ms'), cell(f.floor, 2, ' ms'), `×${fmt(f.compose.median / f.floor.median, 1)}`, '≤ 3× floor (linear in the reply)')
}

/** The fleets measured so far, for the heap each added device costs (the slope between two sizes). */
const fleets: FleetFigures[] = []

function fleetRows(f: FleetFigures): void {
  const name = `Fleet of ${f.devices}${f.processes > 1 ? ` in ${f.processes} simulator processes` : ''}`
  const all = f.complete === f.devices
  if (!all) failures.push(`${name.toLowerCase()}: only ${f.complete} devices completed the detection flow`)
  const window = f.detectWindow >= f.devices ? 'all at once' : `${f.detectWindow} in flight`
  const broker = (s: number | undefined) => (s === undefined ? '' : `; the broker's CPU ${fmt(s, 2)} s`)
  row(`${name}: start (every engine built)`, `${fmt(f.startMs / 1000, 1)} s`, '—', '', '')
  row(`${name}: factory sessions of all, from the start`, `${fmt(f.initialMs / 1000, 1)} s`, '—', `two sessions a device (DM Server, gateway)${broker(f.brokerCpu?.initialS)}`, '')
  row(`${name}: detection flow of all (DDA → DMS list → Associated Gateway)`, `${fmt(f.detectMs / 1000, 1)} s`, '—', `${f.complete} of ${f.devices} completed${all ? '' : ' (FAILED)'}; ${window}${broker(f.brokerCpu?.detectS)}`, '≤ 20 s on 2 cores')
  const other = fleets.find((g) => g.devices !== f.devices && g.processes === f.processes)
  fleets.push(f)
  let slope = ''
  if (other !== undefined) {
    const added = (f.heapPerDevice * f.devices - other.heapPerDevice * other.devices) / (f.devices - other.devices)
    const fixed = f.heapPerDevice * f.devices - added * f.devices
    slope = `; ${fmt(added / 1024, 2)} KB per added device (fleets of ${other.devices} and ${f.devices}), ${fmt(fixed / 2 ** 20, 1)} MB for the process`
  }
  const rss = f.processes > 1 ? `the ${f.processes} processes' RSS ${fmt(f.rss / 2 ** 20, 0)} MB together` : `process RSS ${fmt(f.rss / 2 ** 20, 0)} MB`
  row(`${name}: heap per device`, `${fmt(f.heapPerDevice / 1024, 2)} KB`, '—', `+${fmt(f.externalPerDevice / 1024, 2)} KB external; ${rss}${slope}`, '≤ 8 KB')
}

/** The bench's own mosquitto, for its CPU beside the fleet's (found once, before any other broker runs). */
let brokerPid: number | undefined

function fleetOptions(devices: number, processes = 1) {
  const window = Number(values['detect-window'])
  return { devices, processes, connections: Number(values.connections), detectWindow: window > 0 ? window : devices, timeoutMs: FLEET_PHASE_TIMEOUT_MS, log, ...(brokerPid !== undefined && { brokerPid }) }
}

function fleetConfig(brokerUrl: string): string {
  return agentSetup(brokerUrl, 'mac:02-00-00-00-00-00', {
    location: { enabled: true, pollSeconds: 300 },
    session: { timeoutSeconds: 120, retries: 3, retryBackoffSeconds: 5, maxBackoffSeconds: 60 },
  }).configPath
}

async function fleetSnapshot(brokerUrl: string): Promise<void> {
  const devices = Number(values['snapshot-devices'])
  log(`fleet of ${devices} with a heap snapshot`)
  const options = { ...fleetOptions(devices), snapshot: true, idPrefix: 'mac:02-00' }
  const f = await measureFleet(out, brokerUrl, fleetConfig(brokerUrl), options)
  fleetRows(f)
  notes.push(
    `Heap per device by constructor (${devices} devices, snapshot after the detection flow minus before the first device):`,
    '',
    '| constructor | objects/device | bytes/device |',
    '| --- | ---: | ---: |',
    ...(f.constructors ?? []).map((c) => `| ${c.name.replace(/\|/g, '\\|')} | ${fmt(c.count, 1)} | ${fmt(c.bytes, 0)} |`),
    '',
  )
}

async function fleet(brokerUrl: string): Promise<void> {
  const devices = Number(values.devices)
  const processes = Math.max(1, Number(values['fleet-processes']))
  log(processes > 1 ? `fleet of ${devices} in ${processes} simulator processes` : `fleet of ${devices}`)
  const options = { ...fleetOptions(devices, processes), snapshot: false, idPrefix: 'mac:02-01' }
  fleetRows(await measureFleet(out, brokerUrl, fleetConfig(brokerUrl), options))
}

/** The table so far; written after every section, so a run cut short still leaves what it measured. */
function writeResults(started: number, load: string, complete: boolean): string {
  const header = ['Figure', 'gwmo-agent median (min–max)', 'floor median (min–max)', 'vs floor', 'target']
  const table = [header, header.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n')
  const context = `${new Date(started).toISOString()}, Node ${process.version}, ${cpus().length} CPUs, load average at start ${load}, ${runs} runs after a warm-up, ${complete ? 'whole run' : 'INCOMPLETE run so far'} ${fmt((Date.now() - started) / 1000, 0)} s.`
  const failed = failures.length === 0 ? '' : `\n\n**Failed:** ${failures.join('; ')}`
  const text = `# gwmo-agent bench\n\n${context}${failed}\n\n${table}\n\n${notes.join('\n')}\n`
  mkdirSync(join(root, 'bench', 'results'), { recursive: true })
  writeFileSync(join(root, 'bench', 'results', 'latest.md'), text)
  return text
}

async function main(): Promise<void> {
  const started = Date.now()
  const load = loadavg().map((l) => l.toFixed(1)).join(' ')
  // Open: the simulated fleet shares connections across devices, which a per-device ACL does not describe.
  const broker = await startMosquitto({ settings: BROKER_SETTINGS, open: true })
  brokerPid = childPid('mosquitto')
  const watcher = await Watcher.start(broker.url)
  // A figure that fails is named in the table and the run goes on with the others.
  const only = values.only?.split(',').map((k) => k.trim())
  const section = async (name: string, key: string, work: () => Promise<void>) => {
    if (only !== undefined && !only.includes(key)) return
    try {
      await work()
    } catch (error) {
      const reason = (error as Error).message ?? String(error)
      log(`${name} FAILED: ${(error as Error).stack ?? reason}`)
      failures.push(`${name}: ${reason}`)
      row(name, 'FAILED', '—', reason.replace(/\|/g, '/').replace(/\n/g, ' '), '')
    }
    writeResults(started, load, false)
  }
  try {
    if (!values['skip-store'] && !values['fleet-only']) await section('Durable state', 'store', store)
    if (!values['fleet-only'] && !values['store-only']) {
      await section('Bundle sizes', 'sizes', sizes)
      await section('Start and RSS', 'start', () => starts(broker.url, watcher))
      await section('Round trips and sessions', 'exchanges', () => exchanges(broker.url, watcher))
      await section('Async Exec', 'exec', () => execs(broker.url))
      await section('FUMO download', 'fumo', () => fumo(broker.url))
      await section('DM sessions over HTTP', 'http', () => httpSessions(broker.url))
      await section('Idle cost', 'idle', () => idle(broker.url, watcher))
      await section('CPU by stage', 'stages', () => stages(broker.url, watcher))
      await section('Broker restarts', 'restarts', restarts)
      await section('Codec', 'codec', codec)
      await section('Reply fitting', 'fitting', fitting)
      await section('Start under emulated arm64', 'arm64', () => arm64(broker.url, watcher))
    }
    if (!values['skip-fleet'] && !values['store-only']) {
      if (Number(values['snapshot-devices']) > 0) await section(`Fleet of ${values['snapshot-devices']}, heap snapshot`, 'fleet', () => fleetSnapshot(broker.url))
      await section(`Fleet of ${values.devices}`, 'fleet', () => fleet(broker.url))
    }
  } finally {
    await watcher.stop()
    await broker.stop()
  }
  process.stdout.write(writeResults(started, load, true))
  if (failures.length > 0) {
    log(`${failures.length} figure(s) failed:\n${failures.map((f) => `  ${f}`).join('\n')}`)
    process.exitCode = 1
  }
}

// Ended by a signal: `exit` handlers still run (the broker is killed with the bench), and the forked fleet
// processes end themselves when their IPC channel closes.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(1))

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
