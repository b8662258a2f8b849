/**
 * The simulator side of the fleet figure, as its own process (forked by the bench, talking over IPC): starts
 * `startFleet` (what `gwmo-agent simulate` runs) when told to, and reports its heap, measured after full
 * garbage collections against the heap before the first device started (after one MQTT connection has come
 * and gone, see `warmUp`). Run with `--expose-gc`.
 *
 * argv: broker URL, configuration file, device count, connections, device-id prefix, `snapshot` to add a
 * by-constructor summary. It ends itself when the bench goes away (its IPC channel closes), so a bench that
 * fails or is killed never leaves a fleet running.
 */
import { loadConfigFile } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import { startFleet, type Fleet } from '../../src/runtime/simulate.ts'
import { openConnection } from '../../src/transport/mqtt-client.ts'
import { heapByConstructor, perDevice, type HeapSummary } from './heap-summary.ts'

const [brokerUrl, configPath, count, connections, idPrefix, snapshot] = process.argv.slice(2)
const devices = Number(count)
const send = (message: object) => process.send?.(message)

/**
 * One MQTT connection that publishes once and closes, before the baseline: what MQTT.js makes once per process
 * (its table of 65,536 packet-id Buffers, some 6 MB, made on the first packet written) is then not divided
 * among the devices.
 */
async function warmUp(url: string, logger: ReturnType<typeof createLogger>): Promise<void> {
  const { client } = openConnection({ url, clientId: `fleet-runner-warm-up-${process.pid}`, keepaliveSeconds: 30, reconnect: { baseMs: 1000, capMs: 1000 }, logger })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => client.publish('fleet-runner/warm-up', 'x', { qos: 1 }, (error) => (error ? reject(error) : resolve())))
    client.once('error', reject)
  })
  await new Promise<void>((resolve) => client.end(false, () => resolve()))
}

const collect = () => {
  const gc = (globalThis as { gc?: () => void }).gc
  for (let k = 0; k < 3; k++) gc?.()
  return process.memoryUsage()
}

const SETTLE_STEP_MS = 1000
const SETTLE_MAX_MS = 60_000

/**
 * The heap once the fleet is at rest. The last devices of the detection flow are still ending their sessions
 * with the DM Server when the parties report the flow done (up to the detection window of them, some
 * kilobytes each), so the heap is measured each second, after full collections, until it no longer falls.
 */
async function atRest(): Promise<NodeJS.MemoryUsage> {
  let last = collect()
  for (let waited = 0; waited < SETTLE_MAX_MS; waited += SETTLE_STEP_MS) {
    await new Promise((resolve) => setTimeout(resolve, SETTLE_STEP_MS))
    const now = collect()
    if (now.heapUsed > last.heapUsed * 0.995) return now
    last = now
  }
  return last
}

async function main(): Promise<void> {
  const loaded = await loadConfigFile(configPath!, {})
  if (!loaded.ok) throw new Error(loaded.error)
  // The shared connections' client ids come from `broker.clientId`: simulators that share a configuration on
  // one broker would take each other's connections over, so each has its own, from its id prefix.
  const config = { ...loaded.config, broker: { ...loaded.config.broker, url: brokerUrl!, clientId: `${loaded.config.broker.clientId}-${idPrefix!}` } }
  const logger = createLogger({ level: 'warn', write: (line) => process.stderr.write(line + '\n') })
  await warmUp(brokerUrl!, logger)
  const before: HeapSummary | undefined = snapshot === 'snapshot' ? await heapByConstructor() : undefined
  const baseline = collect()
  let fleet: Fleet | undefined
  process.on('disconnect', () => process.exit(2))
  process.on('message', (message: { kind: string }) => {
    void (async () => {
      if (message.kind === 'start') {
        const started = performance.now()
        const result = await startFleet({ config, devices, logger, connections: Number(connections), idPrefix: idPrefix! })
        if (!result.ok) throw new Error(result.error)
        fleet = result.fleet
        send({ kind: 'started', ms: performance.now() - started })
      } else if (message.kind === 'measure') {
        const now = await atRest()
        const constructors = before === undefined ? undefined : perDevice(before, await heapByConstructor(), devices)
        send({
          kind: 'measured',
          heapPerDevice: (now.heapUsed - baseline.heapUsed) / devices,
          // `external` includes the ArrayBuffers (and so every Buffer).
          externalPerDevice: (now.external - baseline.external) / devices,
          rss: now.rss,
          heapUsed: now.heapUsed,
          ...(constructors && { constructors }),
        })
      } else if (message.kind === 'stop') {
        await fleet?.stop()
        send({ kind: 'stopped' })
        process.exit(0)
      }
    })().catch((error: unknown) => send({ kind: 'error', error: String((error as Error).stack ?? error) }))
  })
  send({ kind: 'ready' })
}

main().catch((error: unknown) => {
  process.stderr.write(`fleet runner: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
