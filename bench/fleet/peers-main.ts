/**
 * The parties' side of the fleet figure, as its own process (forked by the bench, over IPC): a DM Server and
 * a DM Gateway for every device (`peers.ts`). On `initial` it waits until each device has finished the sessions
 * its factory bootstrap opens with both parties and reports when the last one did (wall clock, so the bench can
 * set it against the moment it told the simulator to start); on `detect` it runs the detection flow for every
 * device, `concurrency` of them in flight at a time, and reports how long it took and how many completed.
 *
 * argv: broker URL, device-id prefixes and device counts (comma separated, one of each per simulator process).
 * It ends itself when the bench goes away (IPC closed).
 */
import { fleetDeviceIds } from '../../src/runtime/simulate.ts'
import { BENCH_PARTIES } from '../lib/agent-setup.ts'
import { detectionFlow, startFleetPeers, withLimit } from './peers.ts'

const [brokerUrl, prefixes, counts] = process.argv.slice(2)
const send = (message: object) => process.send?.(message)
const GW_ADDRESS = '2002:0:0:0:0:0:9da6:e219'
const PROGRESS_EVERY_MS = 10_000

async function main(): Promise<void> {
  const sizes = counts!.split(',').map(Number)
  const ids = prefixes!.split(',').flatMap((prefix, i) => {
    const named = fleetDeviceIds(prefix, sizes[i]!)
    if (!named.ok) throw new Error(named.error)
    return named.ids
  })
  const peers = await startFleetPeers(brokerUrl!, BENCH_PARTIES.server, BENCH_PARTIES.gateway)
  process.on('disconnect', () => process.exit(2))

  /** Runs `work` for every device, reporting how many are done every few seconds. */
  const everyDevice = async <R>(what: string, concurrency: number, work: (id: string) => Promise<R>): Promise<R[]> => {
    let done = 0
    const progress = setInterval(() => send({ kind: 'progress', what, done, devices: ids.length }), PROGRESS_EVERY_MS)
    try {
      return await withLimit(ids, concurrency, (id) => work(id).finally(() => done++))
    } catch (error) {
      throw new Error(`${what}: ${done} of ${ids.length} done when one failed: ${(error as Error).message}`)
    } finally {
      clearInterval(progress)
    }
  }

  process.on('message', (message: { kind: string; concurrency?: number; timeoutMs?: number }) => {
    void (async () => {
      const timeoutMs = message.timeoutMs ?? 120_000
      if (message.kind === 'initial') {
        let lastAt = 0
        await everyDevice('factory sessions', ids.length, async (id) => {
          for (const party of [peers.server.member(id), peers.gateway.member(id)]) {
            await party.waitForSession((s) => s.origin === 'device' && s.closed, timeoutMs)
          }
          lastAt = Date.now()
        })
        send({ kind: 'initial', lastAt })
      } else if (message.kind === 'detect') {
        const started = performance.now()
        const outcomes = await everyDevice('detection flows', message.concurrency ?? ids.length, (id) =>
          detectionFlow(peers, id, GW_ADDRESS, timeoutMs).catch(() => undefined),
        )
        const complete = outcomes.filter((o) => o?.associated && o.dmsList.length === 1 && o.dmsList[0] === BENCH_PARTIES.server.serverId).length
        send({ kind: 'detected', ms: performance.now() - started, complete, devices: ids.length })
      } else if (message.kind === 'stop') {
        await peers.stop()
        process.exit(0)
      }
    })().catch((error: unknown) => send({ kind: 'error', error: String((error as Error).stack ?? error) }))
  })
  send({ kind: 'ready' })
}

main().catch((error: unknown) => {
  process.stderr.write(`fleet peers: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
