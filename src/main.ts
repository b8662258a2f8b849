// The bundle's entry: runs the command line, then stops cleanly on SIGTERM/SIGINT (systemd's stop) within 5 s.
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { runCli, EXIT } from './runtime/cli.ts'

/**
 * The fleet simulator is a bundle of its own beside this one: a device never runs it, so its bytes stay out of
 * the file every device ships and loads. So is `gwmo-agent ddf`, an integrator's occasional command: the .deb
 * ships it, but the agent never loads it.
 */
const SIMULATOR_FILE = 'gwmo-agent-simulate.js'
const DDF_FILE = 'gwmo-agent-ddf.js'

/** The bundle `file` beside this one, or undefined when it is not there. */
function loadBeside<T>(file: string): T | undefined {
  // The bundle is CommonJS (build/esbuild-options.mjs): `__filename` and `__dirname` name the bundle itself.
  const path = join(__dirname, file)
  try {
    return createRequire(__filename)(path)
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && (error as Error).message.includes(path)
    if (missing) return undefined
    throw error
  }
}

/** systemd's default stop timeout is longer; the agent promises to be done within this. */
const STOP_DEADLINE_MS = 5000
/** A simulated fleet stops thousands of engines and publishes each one's `offline`. */
const FLEET_STOP_DEADLINE_MS = 60_000

async function main(): Promise<void> {
  const started = await runCli({
    argv: process.argv.slice(2),
    env: process.env,
    stdout: (line) => process.stdout.write(line + '\n'),
    stderr: (line) => process.stderr.write(line + '\n'),
    version: process.env.GWMO_AGENT_VERSION ?? 'dev',
    loadSimulator: () => loadBeside(SIMULATOR_FILE),
    loadDdf: () => loadBeside(DDF_FILE),
  })
  if (started.kind === 'exit') {
    process.exitCode = started.code
    return
  }
  const { logger } = started
  const running = started.kind === 'running' ? started.agent : started.fleet
  const deadlineMs = started.kind === 'running' ? STOP_DEADLINE_MS : FLEET_STOP_DEADLINE_MS
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info('stopping', { signal })
    const deadline = setTimeout(() => {
      logger.error('stop deadline passed; exiting')
      process.exit(EXIT.failure)
    }, deadlineMs)
    deadline.unref()
    running.stop().then(
      () => {
        logger.info('stopped')
        process.exit(EXIT.ok)
      },
      (error: unknown) => {
        logger.error('stop failed', { error })
        process.exit(EXIT.failure)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

void main().catch((error: unknown) => {
  process.stderr.write(`gwmo-agent: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(EXIT.failure)
})
