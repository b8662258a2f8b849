/**
 * Full DM sessions per second against the DM Server peer: a DM Notification (Package 0), then Package 1 (Alert
 * 1200, DevInfo, the device's auth-md5 Cred), Package 2 (the server's Cred and a Get), Package 3 (Results),
 * Package 4 (Status, Final), one session after the other. The floor is the same turn-taking with the floor
 * client: two echoed round trips per "session", with messages of Package 1's size.
 */
import { get } from '../../test/peers/commands.ts'
import type { DmServer } from '../../test/peers/dm-server.ts'
import type { Watcher } from '../lib/watch.ts'
import { ratePerSecond, repeat, summarize, type Summary } from '../lib/stats.ts'

export async function sessionsPerSecond(server: DmServer, options: { runs: number; warmup: number; durationMs: number }): Promise<{ rate: Summary; package1Bytes: number }> {
  server.script(() => [get('./DevInfo/DevId')])
  let sessionId = 0x100
  const one = async () => {
    const id = ++sessionId
    const hex = id.toString(16).toUpperCase()
    await server.sendNotification({ sessionId: id })
    await server.waitForSession((s) => s.sessionId === hex && s.closed, 30_000)
  }
  const values = await repeat(options.runs, options.warmup, () => ratePerSecond(options.durationMs, one))
  const last = server.sessions[server.sessions.length - 1]
  const package1 = last?.received[0]?.payload
  return { rate: summarize(values), package1Bytes: typeof package1 === 'string' ? Buffer.byteLength(package1) : package1?.byteLength ?? 0 }
}

export async function echoSessionsPerSecond(watcher: Watcher, id: string, bytes: number, options: { runs: number; warmup: number; durationMs: number }): Promise<Summary> {
  await watcher.subscribe(`floor/${id}/out`)
  const payload = Buffer.alloc(bytes, 0x61)
  const echo = async () => {
    const back = watcher.next(`floor/${id}/out`)
    await watcher.publish(`floor/${id}/in`, payload)
    await back
  }
  const values = await repeat(options.runs, options.warmup, () =>
    ratePerSecond(options.durationMs, async () => {
      await echo()
      await echo()
    }),
  )
  return summarize(values)
}
