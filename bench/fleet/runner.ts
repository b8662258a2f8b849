/**
 * The simulator side of the fleet figure, as its own process (forked by the bench, talking over IPC): starts
 * `startFleet` (what `gwmo-agent simulate` runs) and reports its heap, measured after full garbage collections
 * against the heap before the first device started. Run with `--expose-gc`.
 *
 * argv: broker URL, configuration file, device count, connections, `snapshot` to add a by-constructor summary.
 */
import { loadConfigFile } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import { startFleet } from '../../src/runtime/simulate.ts'
import { heapByConstructor, perDevice, type HeapSummary } from './heap-summary.ts'

const [brokerUrl, configPath, count, connections, snapshot] = process.argv.slice(2)
const devices = Number(count)
const send = (message: object) => process.send?.(message)

const collect = () => {
  const gc = (globalThis as { gc?: () => void }).gc
  for (let k = 0; k < 3; k++) gc?.()
  return process.memoryUsage()
}

async function main(): Promise<void> {
  const loaded = await loadConfigFile(configPath!, {})
  if (!loaded.ok) throw new Error(loaded.error)
  const config = { ...loaded.config, broker: { ...loaded.config.broker, url: brokerUrl! } }
  const logger = createLogger({ level: 'warn', write: (line) => process.stderr.write(line + '\n') })
  let before: HeapSummary | undefined
  if (snapshot === 'snapshot') before = await heapByConstructor()
  const baseline = collect()
  const started = performance.now()
  const result = await startFleet({ config, devices, logger, connections: Number(connections) })
  if (!result.ok) throw new Error(result.error)
  send({ kind: 'started', ms: performance.now() - started })
  process.on('message', (message: { kind: string }) => {
    void (async () => {
      if (message.kind === 'measure') {
        const now = collect()
        const constructors = before === undefined ? undefined : perDevice(before, await heapByConstructor(), devices)
        send({
          kind: 'measured',
          heapPerDevice: (now.heapUsed - baseline.heapUsed) / devices,
          externalPerDevice: (now.external + now.arrayBuffers - baseline.external - baseline.arrayBuffers) / devices,
          rss: now.rss,
          heapUsed: now.heapUsed,
          ...(constructors && { constructors }),
        })
      } else if (message.kind === 'stop') {
        await result.fleet.stop()
        send({ kind: 'stopped' })
        process.exit(0)
      }
    })()
  })
}

main().catch((error: unknown) => {
  process.stderr.write(`fleet runner: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
