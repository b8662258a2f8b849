/**
 * Device Detection Alert → Bootstrapped DMS List, against the floor client echoing a message of the Detection
 * Alert's size. Both are timed the same way, on the wire, by one observer client (TCP_NODELAY like every side):
 * from the broker delivering the request to the observer, to the broker delivering the answer to it. The
 * request reaches the device and the observer at the same moment, so the figure is the device's own work plus
 * one hop back through the broker; the gateway peer's work (building the alert, checking the answer's
 * credentials) is not in it. QoS 1 each way.
 */
import type { Gateway } from '../../test/peers/gateway.ts'
import { topicFor } from '../../test/peers/mqtt.ts'
import type { Watcher } from '../lib/watch.ts'
import { sleep } from '../lib/processes.ts'
import { repeat, summarize, type Summary } from '../lib/stats.ts'

/** Above the device's 200 ms between a party's refused messages (5 a second). */
const REFUSAL_PACE_MS = 250

const holds = (marker: string) => (payload: Buffer) => payload.includes(marker)

/** Share false: the detection then starts no session with the DM Server, so every sample is the same work. */
export async function detectionRoundTrips(
  gateway: Gateway,
  watcher: Watcher,
  ids: { deviceId: string; gatewayId: string },
  options: { runs: number; warmup: number },
): Promise<{ ms: Summary; peerMs: Summary; bytes: number }> {
  const toDevice = topicFor(ids.deviceId, 'dm')
  const toGateway = topicFor(ids.gatewayId, 'dm')
  await watcher.subscribe(toDevice)
  await watcher.subscribe(toGateway)
  const peer: number[] = []
  const values = await repeat(options.runs, options.warmup, async (run) => {
    // Each detection is a new session of the gateway's, and binding.md §6 has it begin with 401 + Chal (the nonce
    // the device gave last was spent by the gateway's closing message): the figure includes that round trip. The
    // device answers such refusals at most 5 a second per party (a burst of 10): samples are paced below that.
    await sleep(REFUSAL_PACE_MS)
    const request = watcher.nextArrival(toDevice, holds('<Data>1230</Data>'))
    const answer = watcher.nextArrival(toGateway, holds('BootstrappedDMSList'))
    const started = performance.now()
    await gateway.detect({ gwAddress: '192.0.2.1', share: false, timeoutMs: 30_000 })
    if (run >= 0) peer.push(performance.now() - started)
    return (await answer) - (await request)
  })
  const last = gateway.sessions[gateway.sessions.length - 1]
  return { ms: summarize(values), peerMs: summarize(peer), bytes: Buffer.byteLength(last?.sent[0]?.xml ?? '') }
}

/** The floor: `bytes` published to the floor client's input, from their arrival there to the echo's arrival. */
export async function echoRoundTrips(watcher: Watcher, id: string, bytes: number, options: { runs: number; warmup: number }): Promise<Summary> {
  await watcher.subscribe(`floor/${id}/in`)
  await watcher.subscribe(`floor/${id}/out`)
  const payload = Buffer.alloc(bytes, 0x61)
  const values = await repeat(options.runs, options.warmup, async () => {
    const request = watcher.nextArrival(`floor/${id}/in`)
    const back = watcher.nextArrival(`floor/${id}/out`)
    await watcher.publish(`floor/${id}/in`, payload)
    return (await back) - (await request)
  })
  return summarize(values)
}
