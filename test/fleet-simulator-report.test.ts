// The fleet simulator's live status and report: a few hundred devices of the real bundle's `gwmo-agent simulate`
// over mosquitto complete their factory sessions and the detection flow with a gateway and a DM Server; the
// status on stderr follows them, and on SIGINT the report (JSON, Markdown and an SVG histogram) counts every
// outcome and gives percentiles of each timed exchange that are ordered and agree with its histogram.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, type TNode } from 'txml'
import { fleetReport, percentile, summarize, type FleetReport, type LatencySummary } from '../src/runtime/simulate-report.ts'
import { fleetDeviceIds, startFleet } from '../src/runtime/simulate.ts'
import { parseConfig } from '../src/config.ts'
import { createLogger } from '../src/log.ts'
import { FleetObserver } from '../src/runtime/simulate-observe.ts'
import { startStatus, statusLine } from '../src/runtime/simulate-status.ts'
import { detectionFlow, startFleetPeers, withLimit } from '../bench/fleet/peers.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { AGENT_BUNDLE } from './helpers/agent-process.ts'
import { GATEWAY, SERVER_A, factoryBootstrapXml } from './fixtures/gwmo/parties.ts'

const DEVICES = 300
const PREFIX = 'mac:02-07'
const GW_ADDRESS = '2002:0:0:0:0:0:9da6:e219'

/** What a percentile must be: a sample, with at least p % of the samples at or below it and fewer below it. */
function consistent(t: Test, sorted: number[], p: number, value: number, what: string): void {
  const atOrBelow = sorted.filter((s) => s <= value).length
  const below = sorted.filter((s) => s < value).length
  t.ok(sorted.includes(value) && atOrBelow >= (p / 100) * sorted.length && below < (p / 100) * sorted.length, `${what}: p${p} ${value}`)
}

t.test('percentiles are nearest-rank samples, and the histogram holds every sample once', async (t) => {
  const ranks = Array.from({ length: 100 }, (_, i) => i + 1)
  t.same([50, 90, 99, 100].map((p) => percentile(ranks, p)), [50, 90, 99, 100], '1..100')
  t.equal(percentile([7], 99), 7, 'one sample is every percentile')
  // Latency-like: most fast, a long tail.
  let seed = 42
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
  const samples = Array.from({ length: 5000 }, () => 0.2 + random() ** 4 * 900)
  const summary = summarize(samples)!
  const sorted = [...samples].sort((a, b) => a - b)
  for (const p of [50, 90, 99] as const) consistent(t, sorted, p, summary[`p${p}`], 'random samples')
  t.equal(summary.min, sorted[0])
  t.equal(summary.max, sorted.at(-1))
  t.equal(summary.bins.reduce((n, b) => n + b.count, 0), samples.length, 'every sample in one bin')
  for (const bin of summary.bins) t.equal(bin.count, sorted.filter((s) => s >= bin.from && (s < bin.to || (bin === summary.bins.at(-1) && s <= bin.to))).length, `bin ${bin.from.toFixed(2)}–${bin.to.toFixed(2)}`)
  t.equal(summarize([]), undefined, 'nothing timed, no summary')
})

t.test('the status: rewritten in place on a terminal, plain lines otherwise, and its last line when it stops', async (t) => {
  const observer = new FleetObserver(() => 0)
  observer.counts.devices = 3
  observer.counts.online = 2
  observer.counts.sessions = { completed: 5, failed: 1, aborted: 1, stopped: 4 }
  observer.counts.detectionsAnswered = 2
  observer.counts.alertsDelivered = 4
  const expected = '0s: devices online 2/3, sessions 5 done 2 failed, detections answered 2, alerts delivered 4'
  t.equal(statusLine(observer), expected, 'failed and aborted sessions count as failed; stopped ones as neither')
  const tty: string[] = []
  startStatus(observer, { isTTY: true, write: (text) => tty.push(text) }, 5)()
  t.same(tty, [`\r\u001b[2K${expected}`, '\n'], 'a terminal: the line erased and written again, then left behind')
  const plain: string[] = []
  startStatus(observer, { write: (text) => plain.push(text) }, 5)()
  t.same(plain, [`${expected}\n`], 'elsewhere: a plain line')
})

/** Ordered, and where the histogram says: below p's bin fewer than p %, up to its bin at least p %. */
function checkSummary(t: Test, name: string, s: LatencySummary): void {
  t.ok(s.count > 0 && s.min <= s.p50 && s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.max, `${name}: min ≤ p50 ≤ p90 ≤ p99 ≤ max (${s.min}, ${s.p50}, ${s.p90}, ${s.p99}, ${s.max})`)
  t.ok(s.mean >= s.min && s.mean <= s.max, `${name}: the mean within min and max`)
  t.equal(s.bins.reduce((n, b) => n + b.count, 0), s.count, `${name}: the histogram holds every sample`)
  t.equal(s.bins[0]!.from, s.min, `${name}: from the fastest`)
  t.equal(s.bins.at(-1)!.to, s.max, `${name}: to the slowest`)
  for (const p of [50, 90, 99] as const) {
    const value = s[`p${p}`]
    const i = s.bins.findIndex((b, k) => value < b.to || k === s.bins.length - 1)
    const before = s.bins.slice(0, i).reduce((n, b) => n + b.count, 0)
    t.ok(before < (p / 100) * s.count && before + s.bins[i]!.count >= (p / 100) * s.count, `${name}: p${p} in the bin the histogram puts it`)
  }
}

const children = (node: TNode | string): TNode[] => (typeof node === 'string' ? [] : node.children.filter((c): c is TNode => typeof c !== 'string'))

/** A broker of its own, and a folder with the factory document every device applies and the configuration naming it. */
async function fleetWorld(t: Test, clientId: string) {
  const broker = await startMosquitto({ open: true })
  t.teardown(() => broker.stop())
  const dir = mkdtempSync(join(tmpdir(), `${clientId}-`))
  writeFileSync(join(dir, 'factory.xml'), factoryBootstrapXml('mac:02-00-00-00-00-00', [SERVER_A, GATEWAY]))
  const raw = {
    deviceId: 'mac:02-00-00-00-00-00',
    broker: { url: broker.url, clientId },
    stateDir: join(dir, 'state'),
    factoryBootstrap: join(dir, 'factory.xml'),
    logLevel: 'warn',
    session: { timeoutSeconds: 20, retries: 3, retryBackoffSeconds: 1, maxBackoffSeconds: 4 },
  }
  const config = join(dir, 'config.json')
  writeFileSync(config, JSON.stringify(raw))
  return { broker, dir, config, raw }
}

/** `gwmo-agent simulate` from the bundle, run to its end. */
async function simulate(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [AGENT_BUNDLE, 'simulate', ...args], { stdio: 'pipe' })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  return { code, stdout, stderr }
}

t.test(`gwmo-agent simulate with ${DEVICES} devices: a live status, and a report on SIGINT`, async (t) => {
  const { broker, dir, config } = await fleetWorld(t, 'gwmo-fleet-report')
  const peers = await startFleetPeers(broker.url, SERVER_A, GATEWAY)
  t.teardown(() => peers.stop())

  const report = join(dir, 'run.json')
  const child = spawn(process.execPath, [AGENT_BUNDLE, 'simulate', '--devices', String(DEVICES), '--id-prefix', PREFIX,
    '--broker', broker.url, '--config', config, '--report', report, '--status-seconds', '1'], { stdio: 'pipe' })
  t.teardown(() => child.kill('SIGKILL'))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const statusLines: string[] = []
  const watchers: Array<() => void> = []
  let pending = ''
  child.stderr.on('data', (chunk: Buffer) => {
    pending += chunk.toString()
    const lines = pending.split('\n')
    pending = lines.pop()!
    statusLines.push(...lines)
    for (const watcher of watchers) watcher()
  })
  const statusShows = (pattern: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no status line matched ${pattern}; last: ${statusLines.at(-1)}`)), 120_000)
      const check = () => {
        const line = statusLines.find((l) => pattern.test(l))
        if (line !== undefined) {
          clearTimeout(timer)
          resolve(line)
        }
      }
      watchers.push(check)
      check()
    })

  const named = fleetDeviceIds(PREFIX, DEVICES)
  if (!named.ok) throw new Error(named.error)
  const ids = named.ids
  // Each device's factory bootstrap opens a session with the DM Server and with the gateway.
  await withLimit(ids, 50, async (id) => {
    for (const party of [peers.server.member(id), peers.gateway.member(id)]) {
      await party.waitForSession((s) => s.origin === 'device' && s.closed && s.deviceAuthenticated, 60_000)
    }
  })
  await statusShows(new RegExp(`devices online ${DEVICES}/${DEVICES}, sessions ([6-9]\\d\\d|\\d{4,}) done 0 failed`))
  const outcomes = await withLimit(ids, 100, (id) => detectionFlow(peers, id, GW_ADDRESS, 60_000))
  t.equal(outcomes.filter((o) => o.associated).length, DEVICES, 'every device completed the detection flow')
  // The Associated Gateway's session ends on the device after the server has it: wait for the status to say so.
  const last = await statusShows(new RegExp(`detections answered ${DEVICES}, alerts delivered ([3-9]\\d\\d|\\d{4,})$`))
  t.match(last, /^\d+s: devices online 300\/300, sessions \d+ done 0 failed/, 'the status line names what the brief asks')
  t.ok(statusLines.every((l) => !l.includes('\r')), 'not a terminal: plain lines')

  child.kill('SIGINT')
  t.equal(await exited, 0, 'a clean exit')
  const json = JSON.parse(readFileSync(report, 'utf8')) as FleetReport
  const { counts } = json
  t.equal(counts.devices, DEVICES)
  t.equal(counts.online, DEVICES, 'every device online when the run ended')
  t.equal(counts.detectionsAnswered, DEVICES, 'one detection answered per device')
  t.ok(counts.alertsDelivered >= DEVICES, `an Associated Gateway delivered per device at least (${counts.alertsDelivered})`)
  t.equal(counts.alertsUndelivered, 0)
  t.ok((counts.sessions.completed ?? 0) >= 3 * DEVICES, `factory sessions with both parties, then the detection's and the alert's (${counts.sessions.completed})`)
  t.equal(counts.sessions.failed ?? 0, 0, 'none failed')
  t.ok(counts.messagesReceived >= counts.sessions.completed! && counts.messagesSent >= counts.sessions.completed!, `messages counted (${counts.messagesSent} sent, ${counts.messagesReceived} received)`)
  t.same(Object.keys(json.latency).sort(), ['answer', 'detection', 'session'], 'each exchange timed')
  t.equal(json.latency.detection!.count, DEVICES, 'one detection timed per device')
  t.ok(json.latency.session!.count >= counts.sessions.completed!, 'every completed session timed')
  t.ok(json.latency.answer!.count >= json.latency.session!.count && json.latency.answer!.count <= counts.messagesSent, 'an answer per session at least, and per message sent at most')
  for (const [name, summary] of Object.entries(json.latency)) checkSummary(t, name, summary)

  const markdown = readFileSync(join(dir, 'run.md'), 'utf8')
  t.comment(markdown)
  t.match(markdown, new RegExp(`\\| detections answered \\| ${DEVICES} \\|`), 'the Markdown counts')
  t.match(markdown, new RegExp(`\\| sessions completed \\| ${counts.sessions.completed} \\|`))
  const d = json.latency.detection!
  t.match(markdown, /\| exchange \(ms\) \| count \| p50 \| p90 \| p99 \| max \|/, 'the Markdown latency table')
  t.match(markdown, new RegExp(`Bootstrapped DMS List acknowledged \\| ${d.count} \\| [\\d.]+ \\| [\\d.]+ \\| [\\d.]+ \\| [\\d.]+ \\|`))
  t.match(markdown, /!\[latency histograms\]\(run\.svg\)/, 'and the histogram beside it')

  const svg = parse(readFileSync(join(dir, 'run.svg'), 'utf8')).filter((n): n is TNode => typeof n !== 'string')
  t.equal(svg.length, 1, 'the SVG parses: one root')
  t.equal(svg[0]!.tagName, 'svg')
  t.equal(svg[0]!.attributes.xmlns, 'http://www.w3.org/2000/svg')
  const panels = children(svg[0]!).filter((n) => n.tagName === 'g')
  t.same(panels.map((g) => g.attributes['data-exchange']).sort(), ['answer', 'detection', 'session'], 'a histogram per exchange')
  for (const g of panels) {
    const summary = json.latency[g.attributes['data-exchange'] as keyof FleetReport['latency']]!
    const bars = children(g).filter((n) => n.tagName === 'rect')
    t.equal(bars.length, summary.bins.length, `${g.attributes['data-exchange']}: a bar per bin`)
    const heights = bars.map((b) => Number(b.attributes.height))
    const tallest = Math.max(...summary.bins.map((b) => b.count))
    t.ok(bars.every((_, i) => (summary.bins[i]!.count === tallest) === (heights[i] === Math.max(...heights))), 'the tallest bar is the fullest bin')
  }
})

t.test('a device whose DM Server refuses it: its failed sessions are counted, the others\' completed ones too', async (t) => {
  const { broker, raw } = await fleetWorld(t, 'gwmo-fleet-report-failing')
  const parsed = parseConfig(raw, {})
  if (!parsed.ok) throw new Error(parsed.error)
  const failing = 'mac:02-08-00-00-00-02'
  const peers = await startFleetPeers(broker.url, SERVER_A, GATEWAY, {
    serverFor: (deviceId) => (deviceId === failing ? { ...SERVER_A, clientPassword: 'not-what-the-device-holds' } : SERVER_A),
  })
  t.teardown(() => peers.stop())
  const observer = new FleetObserver()
  const started = await startFleet({ config: parsed.config, devices: 6, idPrefix: 'mac:02-08', logger: createLogger({ level: 'silent' }), observer })
  if (!started.ok) throw new Error(started.error)
  t.teardown(() => started.fleet.stop())
  const others = started.fleet.devices.map((d) => d.deviceId).filter((id) => id !== failing)
  await withLimit(others, 6, async (id) => {
    for (const party of [peers.server.member(id), peers.gateway.member(id)]) {
      await party.waitForSession((s) => s.origin === 'device' && s.closed && s.deviceAuthenticated, 60_000)
    }
  })
  // The refused device's session fails at its server's 401; the probe runs again at each message the server gets
  // (the device tries again after its backoff).
  await peers.server.member(failing).waitFor(() => (observer.counts.sessions.failed ?? 0) > 0 ? true : undefined, 60_000, 'a failed session')
  const report = fleetReport(observer)
  t.equal(report.counts.devices, 6)
  t.ok((report.counts.sessions.completed ?? 0) >= 2 * others.length, `the others completed their factory sessions (${report.counts.sessions.completed})`)
  t.ok((report.counts.sessions.failed ?? 0) >= 1, `the refused device's session counted as failed (${report.counts.sessions.failed})`)
  t.match(statusLine(observer), new RegExp(`sessions \\d+ done ${(report.counts.sessions.failed ?? 0) + (report.counts.sessions.aborted ?? 0)} failed`), 'and the status says so')
})

t.test('gwmo-agent simulate --duration: the run ends by itself, as on SIGTERM, with its report', async (t) => {
  const { broker, dir, config } = await fleetWorld(t, 'gwmo-fleet-duration')
  const bad = await simulate(['--devices', '4', '--broker', broker.url, '--config', config, '--duration', '0'])
  t.equal(bad.code, 2, '--duration 0: a usage error')
  t.match(bad.stderr, /--duration: a whole number of seconds/)
  const nowhere = await simulate(['--devices', '4', '--broker', broker.url, '--config', config, '--report', join(dir, 'no-such-folder', 'run.json')])
  t.equal(nowhere.code, 2, 'a report that could not be written: a usage error')
  t.match(nowhere.stderr, /--report: cannot write in .*no-such-folder/, 'before any device starts')
  t.notMatch(broker.log(), /gwmo-fleet-duration/, 'and nothing connected')

  const run = await simulate(['--devices', '4', '--id-prefix', 'mac:02-09', '--broker', broker.url, '--config', config, '--duration', '2', '--report', join(dir, 'short'), '--log-level', 'info'])
  t.equal(run.code, 0, 'it exits by itself, cleanly')
  t.ok(run.stdout.split('\n').some((line) => line.includes('"msg":"stopping"') && line.includes('"signal":"SIGTERM"')), 'stopping as on SIGTERM')
  const report = JSON.parse(readFileSync(join(dir, 'short'), 'utf8')) as FleetReport
  t.equal(report.counts.devices, 4, 'and its report written')
  t.match(readFileSync(join(dir, 'short.md'), 'utf8'), /!\[latency histograms\]\(short\.svg\)/, 'OUT.md names OUT.svg beside it')
  t.match(readFileSync(join(dir, 'short.svg'), 'utf8'), /^<svg /)
})
