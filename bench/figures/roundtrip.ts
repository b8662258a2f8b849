/**
 * Device Detection Alert published → Bootstrapped DMS List received, measured at the gateway peer (its own
 * process-independent code, TCP_NODELAY on its socket); the floor is the floor client echoing a message of
 * the Detection Alert's size. Both go through the same broker, each way QoS 1.
 */
import type { Gateway } from '../../test/peers/gateway.ts'
import type { Watcher } from '../lib/watch.ts'
import { repeat, summarize, type Summary } from '../lib/stats.ts'

/** Share false: the detection then starts no session with the DM Server, so every sample is the same work. */
export async function detectionRoundTrips(gateway: Gateway, options: { runs: number; warmup: number }): Promise<{ ms: Summary; bytes: number }> {
  const values = await repeat(options.runs, options.warmup, async () => {
    const started = performance.now()
    await gateway.detect({ gwAddress: '192.0.2.1', share: false, timeoutMs: 30_000 })
    return performance.now() - started
  })
  const last = gateway.sessions[gateway.sessions.length - 1]
  return { ms: summarize(values), bytes: Buffer.byteLength(last?.sent[0]?.xml ?? '') }
}

/** The floor: `bytes` published to the floor client's input, until the same bytes come back on its output. */
export async function echoRoundTrips(watcher: Watcher, id: string, bytes: number, options: { runs: number; warmup: number }): Promise<Summary> {
  await watcher.subscribe(`floor/${id}/out`)
  const payload = Buffer.alloc(bytes, 0x61)
  const values = await repeat(options.runs, options.warmup, async () => {
    const back = watcher.next(`floor/${id}/out`)
    const started = performance.now()
    await watcher.publish(`floor/${id}/in`, payload)
    await back
    return performance.now() - started
  })
  return summarize(values)
}
