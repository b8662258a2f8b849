/**
 * An asynchronous Exec of an integrator's object (binding.md §8) whose program is `/bin/true`: from the DM
 * Server pushing the session that holds the Exec until the result Generic Alert reaches the server. In it: the
 * push's 401 + Chal round trip (binding.md §6, each new session of the server's), the Exec answered 202, the
 * program spawned in its own process group with its minimal environment, its exit, the alert persisted, and the
 * client-initiated session that carries it. Paced like the sessions (the device answers a party's refusals at
 * most 5 a second). The floor: spawning `/bin/true` from Node, `child_process.spawn` to its `exit`.
 */
import { spawn } from 'node:child_process'
import { exec } from '../../test/peers/commands.ts'
import type { DmServer } from '../../test/peers/dm-server.ts'
import type { GenericAlert } from '../../test/peers/session-record.ts'
import { sleep } from '../lib/processes.ts'
import { repeat, summarize, type Summary } from '../lib/stats.ts'

export const TRUE_NODE = './Vendor/Ops/True'
const REFUSAL_PACE_MS = 250

/** The object of the agent's configuration: `/bin/true` on Exec, asynchronous (the default), for `serverId`. */
export function trueObject(serverId: string): Record<string, unknown> {
  return { path: TRUE_NODE, acl: `Exec=${serverId}`, exec: { command: ['/bin/true'] } }
}

export function alertWith(server: DmServer, correlator: string): GenericAlert | undefined {
  for (const s of server.sessions) for (const a of s.genericAlerts) if (a.correlator === correlator) return a
  return undefined
}

export interface ExecFigures {
  /** The server's Exec → the result alert at the server. */
  ms: Summary
  /** The server's Exec → the session that held it closed (its 202 in it). */
  sessionMs: Summary
}

export async function execTimes(server: DmServer, options: { runs: number; warmup: number }): Promise<ExecFigures> {
  let k = 0
  const closed: number[] = []
  const values = await repeat(options.runs, options.warmup, async (run) => {
    await sleep(REFUSAL_PACE_MS)
    const correlator = `bench-exec-${++k}`
    const command = exec(TRUE_NODE, undefined, correlator)
    const started = performance.now()
    const pushed = await server.pushSession([command])
    const sessionClosed = server.waitForSession((s) => s === pushed && s.closed, 30_000).then(() => performance.now())
    const alert = await server.waitFor(() => alertWith(server, correlator), 30_000, `the result alert of ${correlator}`)
    const ms = performance.now() - started
    const closedAt = await sessionClosed
    const code = pushed.statuses.filter((s) => s.command === command).at(-1)?.code
    if (code !== '202') throw new Error(`Exec of ${TRUE_NODE} answered ${code ?? 'nothing'}, not 202`)
    if (alert.data !== '200') throw new Error(`the result alert of ${TRUE_NODE} says ${alert.data}, not 200`)
    // The next push must not cross the session that carried the alert (the peer's nonces would not follow).
    await server.waitForSession((s) => s.genericAlerts.includes(alert) && s.closed, 30_000)
    if (run >= 0) closed.push(closedAt - started)
    return ms
  })
  return { ms: summarize(values), sessionMs: summarize(closed) }
}

/** The floor: `/bin/true` spawned from Node, to its `exit` event. */
export async function spawnTimes(options: { runs: number; warmup: number }): Promise<Summary> {
  const values = await repeat(options.runs, options.warmup, async () => {
    const started = performance.now()
    await new Promise<void>((resolve, reject) => {
      const child = spawn('/bin/true', [], { stdio: 'ignore' })
      child.once('error', reject)
      child.once('exit', () => resolve())
    })
    return performance.now() - started
  })
  return summarize(values)
}
