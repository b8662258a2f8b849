/**
 * `npm run demo`: the whole GwMO story (binding.md §4) with the real bundled agent, a DM Server, a DM Gateway and
 * a local DM Bootstrap Server as scripted peers, on an MQTT 5 broker embedded in this process (or `--broker`):
 *
 *   node dist/demo.js [--broker mqtt://host:port] [--verbose] [--step-timeout SECONDS] [--break-step N]
 *                     [--agent PATH/gwmo-agent.js] [--runtime PATH/bun] [--time-scale N]
 *
 * Each numbered step prints what went over the wire and ends with `✓ step N: …`, or `✗ step N failed: …` and
 * the demo stops there. Exit codes: 0 every step happened, 1 a step did not (named on the last line), 2 usage.
 * `--break-step N` plants a fault that makes step N fail (for its test, and to see what a failure looks like).
 * `--time-scale N` is for a runtime N times slower than this machine (an emulated device): every wait is N times
 * longer (the step timeout, the quiet spell of step 3, the agent's session timers, the grace before SIGKILL).
 */
import { existsSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { STEPS } from './demo-steps.ts'
import { CAST, startWorld, type World } from './demo-world.ts'

const USAGE = `usage: demo [--broker mqtt://host:port] [--verbose] [--step-timeout SECONDS] [--break-step 1..${STEPS.length}]
            [--agent PATH/gwmo-agent.js] [--runtime PATH] [--time-scale 1..100]`

const DEFAULT_STEP_TIMEOUT_S = 10

export interface DemoOptions {
  brokerUrl?: string
  agentBundle: string
  /** The program that runs the bundle: this demo's own Node unless given (e.g. Bun). */
  agentRuntime?: string
  verbose: boolean
  /** The step timeout, already multiplied by `timeScale`. */
  stepTimeoutMs: number
  /** How many times slower the agent's runtime is than this machine: every wait is that many times longer. */
  timeScale: number
  breakStep?: number
  print: (line: string) => void
}

class UsageError extends Error {}

/** The agent bundle beside this program (`dist/demo.js` → `dist/gwmo-agent.js`), or under `./dist`. */
function defaultAgentBundle(): string {
  const program = process.argv[1]
  const beside = program ? resolve(dirname(program), 'gwmo-agent.js') : undefined
  return beside !== undefined && existsSync(beside) ? beside : resolve('dist', 'gwmo-agent.js')
}

export function parseDemoArgs(argv: string[], print: (line: string) => void): DemoOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      broker: { type: 'string' },
      verbose: { type: 'boolean', short: 'v' },
      'step-timeout': { type: 'string' },
      'break-step': { type: 'string' },
      agent: { type: 'string' },
      runtime: { type: 'string' },
      'time-scale': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  })
  if (values.help) return 'help'
  const seconds = Number(values['step-timeout'] ?? DEFAULT_STEP_TIMEOUT_S)
  if (!(seconds > 0 && seconds <= 600)) throw new UsageError('--step-timeout takes seconds, 1 to 600')
  const timeScale = Number(values['time-scale'] ?? 1)
  if (!(Number.isInteger(timeScale) && timeScale >= 1 && timeScale <= 100)) throw new UsageError('--time-scale takes a whole factor, 1 to 100')
  const breakStep = values['break-step'] === undefined ? undefined : Number(values['break-step'])
  if (breakStep !== undefined && !(Number.isInteger(breakStep) && breakStep >= 1 && breakStep <= STEPS.length)) {
    throw new UsageError(`--break-step takes a step number, 1 to ${STEPS.length}`)
  }
  if (values.broker !== undefined && !/^mqtts?:\/\/[^/]+\/?$/.test(values.broker)) {
    throw new UsageError('--broker takes an mqtt:// or mqtts:// URL without a path')
  }
  return {
    ...(values.broker !== undefined && { brokerUrl: values.broker }),
    agentBundle: resolve(values.agent ?? defaultAgentBundle()),
    ...(values.runtime !== undefined && { agentRuntime: resolve(values.runtime) }),
    verbose: values.verbose ?? false,
    stepTimeoutMs: seconds * 1000 * timeScale,
    timeScale,
    ...(breakStep !== undefined && { breakStep }),
    print,
  }
}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms)
  })
  return Promise.race([work, expiry]).finally(() => clearTimeout(timer))
}

/** Runs every step in order; resolves with the exit code. */
export async function runDemo(options: DemoOptions): Promise<number> {
  const { print } = options
  if (!existsSync(options.agentBundle)) {
    print(`demo: no agent bundle at ${options.agentBundle}; run \`npm run build\` first`)
    return 1
  }
  const startedAt = Date.now()
  let world: World | undefined
  let failed: number | undefined
  const interrupted = () => {
    print('\ninterrupted: cleaning up')
    void (world?.close() ?? Promise.resolve()).finally(() => process.exit(130))
  }
  process.once('SIGINT', interrupted)
  try {
    world = await startWorld({ ...options, print })
    print(`GwMO End Device demo: device ${CAST.deviceId}, the real agent (${options.agentBundle})`)
    print(`on ${world.embedded ? 'an embedded MQTT 5 broker at ' : ''}${world.brokerUrl}${options.breakStep ? `, with a fault planted in step ${options.breakStep}` : ''}`)
    for (const [index, step] of STEPS.entries()) {
      const n = index + 1
      print(`\n${n}. ${step.title}`)
      try {
        // A step's own waits give up after the step timeout; this bound only catches a step that hangs elsewhere.
        const summary = await withTimeout(step.run({ world, timeoutMs: options.stepTimeoutMs }), options.stepTimeoutMs * 3, `step ${n}`)
        print(`   ✓ step ${n}: ${summary}`)
      } catch (error) {
        print(`   ✗ step ${n} failed: ${(error as Error).message}`)
        if (!world.agent.running) print(`   the agent exited: ${world.agent.describeExit()}`)
        failed = n
        break
      }
    }
  } catch (error) {
    print(`demo: could not start: ${(error as Error).message}`)
    return 1
  } finally {
    process.removeListener('SIGINT', interrupted)
    await world?.close()
  }
  const seconds = ((Date.now() - startedAt) / 1000).toFixed(1)
  if (failed !== undefined) {
    print(`\nDemo FAILED at step ${failed}: ${STEPS[failed - 1]!.title} (${seconds} s; agent stopped, broker closed, temporary files removed)`)
    return 1
  }
  print(`\nAll ${STEPS.length} steps done in ${seconds} s (agent stopped, broker closed, temporary files removed).`)
  return 0
}

export async function main(argv: string[], print: (line: string) => void = (line) => console.log(line)): Promise<number> {
  let options: DemoOptions | 'help'
  try {
    options = parseDemoArgs(argv, print)
  } catch (error) {
    console.error(`demo: ${(error as Error).message}\n${USAGE}`)
    return 2
  }
  if (options === 'help') {
    print(USAGE)
    return 0
  }
  return runDemo(options)
}

// Run when this file (or the bundle built from it) is the program, not when a test imports it.
const entry = process.argv[1] ?? ''
if (/(^|[\\/])(demo\.ts|demo\.c?js)$/.test(entry)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error)
      process.exit(1)
    },
  )
}
