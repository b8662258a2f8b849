/**
 * The fleet figure: `devices` virtual End Devices in one simulator process against the fleet peers in
 * another, both forked from the bundled bench. Reported: the fleet's start (every engine built), the factory
 * sessions of every device with both parties (from the same moment), the detection flow (DDA → Bootstrapped
 * DMS List → Associated Gateway) for all devices, `detectWindow` of them in flight at a time, and the
 * simulator's heap per device after it.
 * Both processes are always ended before this returns or throws.
 */
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
  /** Detection flows in flight at once. */
  detectWindow: number
  startMs: number
  initialMs: number
  detectMs: number
  complete: number
  heapPerDevice: number
  externalPerDevice: number
  rss: number
  constructors?: Array<{ name: string; count: number; bytes: number }>
}

export interface FleetOptions {
  devices: number
  connections: number
  /** Detection flows in flight at once (the devices: all at once). */
  detectWindow: number
  snapshot: boolean
  idPrefix: string
  /** How long any one phase may take. */
  timeoutMs: number
  log: (line: string) => void
}

export async function measureFleet(out: string, brokerUrl: string, configPath: string, options: FleetOptions): Promise<FleetFigures> {
  const { devices, timeoutMs } = options
  const progress = (m: ChildMessage) => options.log(`fleet: ${String(m.what)} ${String(m.done)} of ${String(m.devices)}`)
  const peers = IpcChild.fork('fleet peers', join(out, 'fleet-peers.cjs'), [brokerUrl, options.idPrefix, String(devices)], ['--max-old-space-size=6144', YOUNG_GENERATION], progress)
  const runner = IpcChild.fork(
    'fleet runner',
    join(out, 'fleet-runner.cjs'),
    [brokerUrl, configPath, String(devices), String(options.connections), options.idPrefix, options.snapshot ? 'snapshot' : ''],
    ['--expose-gc', '--max-old-space-size=4096', YOUNG_GENERATION],
    progress,
  )
  try {
    await Promise.all([peers.next('ready', 60_000), runner.next('ready', 120_000)])
    // The parties listen for every device's factory sessions before the first device starts.
    peers.send({ kind: 'initial', timeoutMs })
    const startedAt = Date.now()
    runner.send({ kind: 'start' })
    const started = await runner.next('started', timeoutMs)
    const initial = await peers.next('initial', timeoutMs + 10_000)
    peers.send({ kind: 'detect', concurrency: options.detectWindow, timeoutMs })
    const detected = await peers.next('detected', timeoutMs + 10_000)
    runner.send({ kind: 'measure' })
    const measured = await runner.next('measured', timeoutMs)
    runner.send({ kind: 'stop' })
    await runner.next('stopped', 60_000).catch((error: Error) => options.log(`fleet: ${error.message}`))
    return {
      devices,
      detectWindow: Math.min(options.detectWindow, devices),
      startMs: started.ms as number,
      initialMs: (initial.lastAt as number) - startedAt,
      detectMs: detected.ms as number,
      complete: detected.complete as number,
      heapPerDevice: measured.heapPerDevice as number,
      externalPerDevice: measured.externalPerDevice as number,
      rss: measured.rss as number,
      ...(measured.constructors !== undefined && { constructors: measured.constructors as FleetFigures['constructors'] }),
    }
  } finally {
    peers.send({ kind: 'stop' })
    await Promise.all([runner.end(), peers.end()])
  }
}
