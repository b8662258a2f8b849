/**
 * The fleet figure: `devices` virtual End Devices in one simulator process against the fleet peers in
 * another, both forked from the bundled bench. Reported: the fleet's start (every engine built), the factory
 * sessions of every device with both parties (from the same moment), the detection flow (DDA → Bootstrapped
 * DMS List → Associated Gateway) for all devices, `detectWindow` of them in flight at a time, and the
 * simulator's heap per device after it. The devices can be shared among several simulator processes on the one
 * broker (`processes`, each with ids of its own); the broker's own CPU over each phase is read beside them.
 * Every process is always ended before this returns or throws.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { IpcChild, type ChildMessage } from '../lib/ipc-child.ts'

/**
 * Both processes run with the young generation `gwmo-agent simulate --help` recommends for a big fleet: with
 * Node's default of 16 MB, scavenges took a third of the simulator's CPU in a 10,000-device detection flow
 * (9.5 s of them over the run, 6.1 s at 64 MB, 3.4 s at 128), copying the many short-lived objects still alive.
 */
const YOUNG_GENERATION = '--max-semi-space-size=64'

export interface FleetFigures {
  devices: number
  /** Simulator processes the devices were shared among. */
  processes: number
  /** Detection flows in flight at once. */
  detectWindow: number
  startMs: number
  initialMs: number
  detectMs: number
  complete: number
  heapPerDevice: number
  externalPerDevice: number
  /** The simulators' RSS, summed. */
  rss: number
  /** The broker's CPU seconds (utime + stime) over the start and factory sessions, and over the detection flow. */
  brokerCpu?: { initialS: number; detectS: number }
  constructors?: Array<{ name: string; count: number; bytes: number }>
}

export interface FleetOptions {
  devices: number
  connections: number
  /** Detection flows in flight at once (the devices: all at once). */
  detectWindow: number
  snapshot: boolean
  idPrefix: string
  /** Simulator processes the devices are shared among (1: all in one). */
  processes: number
  /** The broker's pid, for its CPU beside the fleet's. */
  brokerPid?: number
  /** How long any one phase may take. */
  timeoutMs: number
  log: (line: string) => void
}

/** The broker's CPU seconds so far (utime + stime in USER_HZ ticks, 100 a second on Linux). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** The pid of this process's child running `command` (the bench's private mosquitto), if there is one. */
export function childPid(command: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (name === command && ppid === process.pid) return Number(entry)
    } catch {
      // a process that ended while listed
    }
  }
  return undefined
}

/** The devices shared among `processes` simulators: each its count and an id prefix of its own. */
function shares(options: FleetOptions): Array<{ prefix: string; devices: number }> {
  const k = Math.max(1, options.processes)
  if (k === 1) return [{ prefix: options.idPrefix, devices: options.devices }]
  return Array.from({ length: k }, (_, i) => ({
    prefix: `${options.idPrefix}-${i.toString(16).padStart(2, '0')}`,
    devices: Math.floor(options.devices / k) + (i < options.devices % k ? 1 : 0),
  }))
}

export async function measureFleet(out: string, brokerUrl: string, configPath: string, options: FleetOptions): Promise<FleetFigures> {
  const { devices, timeoutMs } = options
  const parts = shares(options)
  const snapshot = options.snapshot && parts.length === 1
  const progress = (m: ChildMessage) => options.log(`fleet: ${String(m.what)} ${String(m.done)} of ${String(m.devices)}`)
  const peers = IpcChild.fork(
    'fleet peers',
    join(out, 'fleet-peers.cjs'),
    [brokerUrl, parts.map((p) => p.prefix).join(','), parts.map((p) => p.devices).join(',')],
    ['--max-old-space-size=6144', YOUNG_GENERATION],
    progress,
  )
  const runners = parts.map((part, i) =>
    IpcChild.fork(
      parts.length === 1 ? 'fleet runner' : `fleet runner ${i + 1}`,
      join(out, 'fleet-runner.cjs'),
      [brokerUrl, configPath, String(part.devices), String(options.connections), part.prefix, snapshot ? 'snapshot' : ''],
      ['--expose-gc', '--max-old-space-size=4096', YOUNG_GENERATION],
      progress,
    ),
  )
  const all = (kind: string, ms: number) => Promise.all(runners.map((r) => r.next(kind, ms)))
  const broker = () => (options.brokerPid === undefined ? NaN : cpuSeconds(options.brokerPid))
  try {
    await Promise.all([peers.next('ready', 60_000), all('ready', 120_000)])
    // The parties listen for every device's factory sessions before the first device starts.
    peers.send({ kind: 'initial', timeoutMs })
    const brokerAtStart = broker()
    const startedAt = Date.now()
    for (const runner of runners) runner.send({ kind: 'start' })
    const started = await all('started', timeoutMs)
    const initial = await peers.next('initial', timeoutMs + 10_000)
    const brokerAtDetect = broker()
    peers.send({ kind: 'detect', concurrency: options.detectWindow, timeoutMs })
    const detected = await peers.next('detected', timeoutMs + 10_000)
    const brokerAtEnd = broker()
    for (const runner of runners) runner.send({ kind: 'measure' })
    const measured = await all('measured', timeoutMs)
    for (const runner of runners) runner.send({ kind: 'stop' })
    await all('stopped', 60_000).catch((error: Error) => options.log(`fleet: ${error.message}`))
    const sum = (pick: (m: ChildMessage, devices: number) => number) => measured.reduce((a, m, i) => a + pick(m, parts[i]!.devices), 0)
    const constructors = measured[0]?.constructors
    return {
      devices,
      processes: parts.length,
      detectWindow: Math.min(options.detectWindow, devices),
      startMs: Math.max(...started.map((m) => m.ms as number)),
      initialMs: (initial.lastAt as number) - startedAt,
      detectMs: detected.ms as number,
      complete: detected.complete as number,
      heapPerDevice: sum((m, n) => (m.heapPerDevice as number) * n) / devices,
      externalPerDevice: sum((m, n) => (m.externalPerDevice as number) * n) / devices,
      rss: sum((m) => m.rss as number),
      ...(options.brokerPid !== undefined && { brokerCpu: { initialS: brokerAtDetect - brokerAtStart, detectS: brokerAtEnd - brokerAtDetect } }),
      ...(snapshot && constructors !== undefined && { constructors: constructors as FleetFigures['constructors'] }),
    }
  } finally {
    peers.send({ kind: 'stop' })
    await Promise.all([...runners.map((r) => r.end()), peers.end()])
  }
}
