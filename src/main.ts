// The bundle's entry: runs the command line, then stops cleanly on SIGTERM/SIGINT (systemd's stop) within 5 s.
import { runCli, EXIT } from './runtime/cli.ts'

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
