/**
 * The parties' side of the fleet figure, as its own process (forked by the bench, over IPC): a DM Server and
 * a DM Gateway for every device (`peers.ts`). On `initial` it waits until each device has finished the sessions
 * its factory bootstrap opens; on `detect` it runs the detection flow for every device at once (up to
 * `concurrency` in flight) and reports how long it took for all of them.
 *
 * argv: broker URL, device-id prefix, device count.
 */
import { fleetDeviceIds } from '../../src/runtime/simulate.ts'
import { BENCH_PARTIES } from '../lib/agent-setup.ts'
import { detectionFlow, startFleetPeers, withLimit } from './peers.ts'

const [brokerUrl, prefix, count] = process.argv.slice(2)
const send = (message: object) => process.send?.(message)

async function main(): Promise<void> {
  const named = fleetDeviceIds(prefix!, Number(count))
  if (!named.ok) throw new Error(named.error)
  const ids = named.ids
  const peers = await startFleetPeers(brokerUrl!, BENCH_PARTIES.server, BENCH_PARTIES.gateway)
  send({ kind: 'ready' })
  process.on('message', (message: { kind: string; concurrency?: number; timeoutMs?: number }) => {
    void (async () => {
      const timeoutMs = message.timeoutMs ?? 120_000
      const started = performance.now()
      if (message.kind === 'initial') {
        await withLimit(ids, 2000, async (id) => {
          for (const party of [peers.server.member(id), peers.gateway.member(id)]) {
            await party.waitForSession((s) => s.origin === 'device' && s.closed, timeoutMs)
          }
        })
        send({ kind: 'initial', ms: performance.now() - started })
      } else if (message.kind === 'detect') {
        const outcomes = await withLimit(ids, message.concurrency ?? 1000, (id) =>
          detectionFlow(peers, id, '2002:0:0:0:0:0:9da6:e219', timeoutMs).catch(() => undefined),
        )
        const complete = outcomes.filter((o) => o?.associated && o.dmsList.length === 1 && o.dmsList[0] === BENCH_PARTIES.server.serverId).length
        send({ kind: 'detected', ms: performance.now() - started, complete, devices: ids.length })
      } else if (message.kind === 'stop') {
        await peers.stop()
        process.exit(0)
      }
    })().catch((error: unknown) => send({ kind: 'error', error: String((error as Error).stack ?? error) }))
  })
}

main().catch((error: unknown) => {
  process.stderr.write(`fleet peers: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
