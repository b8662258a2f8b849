/**
 * The fleet figure: `devices` virtual End Devices in one simulator process against the fleet peers in
 * another, both forked from the bundled bench. Reported: the fleet's start, the factory sessions of every
 * device, the detection flow (DDA → Bootstrapped DMS List → Associated Gateway) for all devices, and the
 * simulator's heap per device after it.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'

export interface FleetFigures {
  devices: number
  startMs: number
  initialMs: number
  detectMs: number
  complete: number
  heapPerDevice: number
  externalPerDevice: number
  rss: number
  constructors?: Array<{ name: string; count: number; bytes: number }>
}

function next(child: ChildProcess, kind: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fleet: no ${kind} within ${timeoutMs} ms`)), timeoutMs)
    const onMessage = (message: Record<string, unknown>) => {
      if (message.kind === 'error') reject(new Error(String(message.error)))
      if (message.kind !== kind) return
      clearTimeout(timer)
      child.off('message', onMessage)
      resolve(message)
    }
    child.on('message', onMessage)
    child.once('exit', (code) => reject(new Error(`fleet: process exited (${code}) waiting for ${kind}`)))
  })
}

export async function measureFleet(
  out: string,
  brokerUrl: string,
  configPath: string,
  options: { devices: number; connections: number; snapshot: boolean; idPrefix: string },
): Promise<FleetFigures> {
  const stdio = ['ignore', 'inherit', 'inherit', 'ipc'] as const
  const peers = fork(join(out, 'fleet-peers.cjs'), [brokerUrl, options.idPrefix, String(options.devices)], {
    stdio: [...stdio],
    execArgv: ['--max-old-space-size=6144'],
  })
  const runner = fork(join(out, 'fleet-runner.cjs'), [brokerUrl, configPath, String(options.devices), String(options.connections), options.snapshot ? 'snapshot' : ''], {
    stdio: [...stdio],
    execArgv: ['--expose-gc', '--max-old-space-size=4096'],
  })
  try {
    await next(peers, 'ready', 60_000)
    const started = await next(runner, 'started', 240_000)
    peers.send({ kind: 'initial', timeoutMs: 240_000 })
    const initial = await next(peers, 'initial', 300_000)
    peers.send({ kind: 'detect', concurrency: options.devices, timeoutMs: 240_000 })
    const detected = await next(peers, 'detected', 300_000)
    runner.send({ kind: 'measure' })
    const measured = await next(runner, 'measured', 240_000)
    runner.send({ kind: 'stop' })
    await next(runner, 'stopped', 120_000).catch(() => undefined)
    return {
      devices: options.devices,
      startMs: started.ms as number,
      initialMs: initial.ms as number,
      detectMs: detected.ms as number,
      complete: detected.complete as number,
      heapPerDevice: measured.heapPerDevice as number,
      externalPerDevice: measured.externalPerDevice as number,
      rss: measured.rss as number,
      ...(measured.constructors !== undefined && { constructors: measured.constructors as FleetFigures['constructors'] }),
    }
  } finally {
    peers.send({ kind: 'stop' })
    for (const child of [runner, peers]) setTimeout(() => child.exitCode === null && child.kill('SIGKILL'), 10_000).unref()
  }
}
