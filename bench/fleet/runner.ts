/**
 * The simulator side of the fleet figure, as its own process (forked by the bench, talking over IPC): starts
 * `startFleet` (what `gwmo-agent simulate` runs) when told to, and reports its heap, measured after full
 * garbage collections against the heap before the first device started. Run with `--expose-gc`.
 *
 * argv: broker URL, configuration file, device count, connections, device-id prefix, `snapshot` to add a
 * by-constructor summary. It ends itself when the bench goes away (its IPC channel closes), so a bench that
 * fails or is killed never leaves a fleet running.
 */
import { loadConfigFile } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import { startFleet, type Fleet } from '../../src/runtime/simulate.ts'
import { heapByConstructor, perDevice, type HeapSummary } from './heap-summary.ts'

const [brokerUrl, configPath, count, connections, idPrefix, snapshot] = process.argv.slice(2)
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
        const now = collect()
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
