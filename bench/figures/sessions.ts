/**
 * Full DM sessions against the DM Server peer: a DM Notification (Package 0), then Package 1 (Alert 1200, DevInfo,
 * the device's auth-md5 Cred), Package 2 (the server's Cred and a Get), Package 3 (Results), Package 4 (Status,
 * Final), timed one at a time from the notification to the session's close. Each session is a new one of the
 * server's, so binding.md §6 has its Package 2 answered 401 + Chal first (the nonce the device gave last was spent
 * by the server's closing message): that round trip is in the figure. The device answers a party's refused
 * messages at most 5 a second (a burst of 10), so the sessions are paced below that; sessions per second are
 * given as what one at a time would reach back to back. The floor is the same turn-taking with the floor client:
 * two echoed round trips per "session", with messages of Package 1's size.
 */
import { get } from '../../test/peers/commands.ts'
import type { DmServer } from '../../test/peers/dm-server.ts'
import { sleep } from '../lib/processes.ts'
import type { Watcher } from '../lib/watch.ts'
import { repeat, summarize, type Summary } from '../lib/stats.ts'

/** Above the device's 200 ms between a party's refused messages. */
const REFUSAL_PACE_MS = 250

export async function sessionTimes(server: DmServer, options: { runs: number; warmup: number }): Promise<{ ms: Summary; package1Bytes: number }> {
  server.script(() => [get('./DevInfo/DevId')])
  let sessionId = 0x100
  const values = await repeat(options.runs, options.warmup, async () => {
    await sleep(REFUSAL_PACE_MS)
    const id = ++sessionId
    const hex = id.toString(16).toUpperCase()
    const started = performance.now()
    await server.sendNotification({ sessionId: id })
    await server.waitForSession((s) => s.sessionId === hex && s.closed, 30_000)
    return performance.now() - started
  })
  const last = server.sessions[server.sessions.length - 1]
  const package1 = last?.received[0]?.payload
  return { ms: summarize(values), package1Bytes: typeof package1 === 'string' ? Buffer.byteLength(package1) : package1?.byteLength ?? 0 }
}

export async function echoSessionTimes(watcher: Watcher, id: string, bytes: number, options: { runs: number; warmup: number }): Promise<Summary> {
  await watcher.subscribe(`floor/${id}/out`)
  const payload = Buffer.alloc(bytes, 0x61)
  const echo = async () => {
    const back = watcher.next(`floor/${id}/out`)
    await watcher.publish(`floor/${id}/in`, payload)
    await back
  }
  const values = await repeat(options.runs, options.warmup, async () => {
    const started = performance.now()
    await echo()
    await echo()
    return performance.now() - started
  })
  return summarize(values)
}
