/**
 * `gwmo-agent simulate`: the command line of the fleet simulator (`simulate.ts`). Like the agent's own command
 * line, everything is checked before anything starts.
 */
import { access, constants, writeFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { loadConfigFile, type AgentConfig } from '../config.ts'
import { createLogger, type LogLevel, type Logger } from '../log.ts'
import { brokerOrigin } from '../transport/topics.ts'
import { DEFAULT_ID_PREFIX, startFleet, type Fleet } from './simulate.ts'
import { FleetObserver } from './simulate-observe.ts'
import { fleetReport, reportMarkdown, reportSvg } from './simulate-report.ts'
import { startStatus, type StatusStream } from './simulate-status.ts'

export const SIMULATE_USAGE = `usage: gwmo-agent simulate --devices N --broker URL --config FILE
         [--state-dir DIR] [--id-prefix ${DEFAULT_ID_PREFIX}] [--connections K] [--topic-plan each|wildcard]
         [--log-level debug|info|warn|error] [--report OUT] [--status-seconds S] [--duration S]

Runs N virtual End Devices in one process, each a whole agent with its own DevId, tree and sessions, sharing
K MQTT connections (default 1) to URL. FILE is an agent configuration: every device applies its
factoryBootstrap and its settings; its deviceId and stateDir are replaced per device. Trees live in memory
unless --state-dir is given (one folder per device under it). Runs until SIGINT or SIGTERM, or for
--duration S seconds, then stops as on SIGTERM.

While it runs, a status on stderr: devices online, sessions done and failed, detections answered, alerts
delivered; one line rewritten every second on a terminal, otherwise a line every S seconds (default 5; 0:
none). When it stops, a report: counts per outcome and the p50/p90/p99/max latency of each exchange it timed,
as Markdown on stdout, or with --report OUT as JSON in OUT, Markdown in OUT.md and a histogram in OUT.svg (a
.json ending of OUT left out of those two names).

A connection carries N/K devices: the broker must queue a message for each of them at once (a gateway
detecting them all). mosquitto keeps 1000 per client by default and drops the rest: set max_queued_messages
to 0 or above N/K, or raise K. With thousands of devices, --log-level warn keeps the log readable, and a
larger young generation spares a third of the CPU: NODE_OPTIONS=--max-semi-space-size=64.`

const LOG_LEVELS = new Set(['debug', 'info', 'warn', 'error'])
const MAX_DEVICES = 1_000_000
const MAX_CONNECTIONS = 64
/** 30 days: a soak test's length, and far below what a timer takes (2^31 ms). */
const MAX_DURATION_SECONDS = 30 * 86_400

export interface SimulateIo {
  argv: string[]
  env: Record<string, string | undefined>
  stdout: (line: string) => void
  stderr: (line: string) => void
  version?: string
  /** Where the live status goes: the process's stderr unless given. */
  status?: StatusStream
  /** Ends the run once --duration has passed: a SIGTERM to the process unless given, so that it stops as on one. */
  requestStop?: () => void
}

export type SimulateStart =
  | { kind: 'exit'; code: number }
  | { kind: 'simulating'; fleet: Fleet; logger: Logger; config: AgentConfig }

const wholeNumber = (text: string | undefined, min: number, max: number): number | undefined => {
  if (text === undefined || !/^\d+$/.test(text)) return undefined
  const n = Number(text)
  return n >= min && n <= max ? n : undefined
}

/** Exit codes as the agent's (cli.ts): 1 runtime failure, 2 bad usage or configuration. */
export async function runSimulateCli(io: SimulateIo, exit: { ok: number; failure: number; usage: number }): Promise<SimulateStart> {
  let values: Record<string, string | boolean | undefined>
  try {
    ;({ values } = parseArgs({
      args: io.argv,
      options: {
        devices: { type: 'string', short: 'n' },
        broker: { type: 'string' },
        config: { type: 'string', short: 'c' },
        'state-dir': { type: 'string' },
        'id-prefix': { type: 'string' },
        connections: { type: 'string' },
        'topic-plan': { type: 'string' },
        'log-level': { type: 'string' },
        report: { type: 'string' },
        'status-seconds': { type: 'string' },
        duration: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }))
  } catch (error) {
    io.stderr(`gwmo-agent simulate: ${(error as Error).message}`)
    return { kind: 'exit', code: exit.usage }
  }
  const usage = (problem: string): SimulateStart => {
    io.stderr(`gwmo-agent simulate: ${problem}`)
    return { kind: 'exit', code: exit.usage }
  }
  if (values.help) {
    io.stdout(SIMULATE_USAGE)
    return { kind: 'exit', code: exit.ok }
  }
  const devices = wholeNumber(values.devices as string | undefined, 1, MAX_DEVICES)
  if (devices === undefined) return usage(`--devices N is required, a whole number from 1 to ${MAX_DEVICES}`)
  const connections = values.connections === undefined ? 1 : wholeNumber(values.connections as string, 1, MAX_CONNECTIONS)
  if (connections === undefined) return usage(`--connections: a whole number from 1 to ${MAX_CONNECTIONS}`)
  const plan = (values['topic-plan'] as string | undefined) ?? 'each'
  if (plan !== 'each' && plan !== 'wildcard') return usage('--topic-plan: must be each or wildcard')
  const level = values['log-level'] as string | undefined
  if (level !== undefined && !LOG_LEVELS.has(level)) return usage('--log-level: must be one of debug, info, warn, error')
  const broker = values.broker as string | undefined
  if (broker === undefined) return usage('--broker URL is required')
  if (brokerOrigin(broker) === undefined) return usage('--broker: must be an mqtt:// or mqtts:// URL')
  if (values.config === undefined) return usage('--config FILE is required (it names the factory bootstrap every device applies)')
  const statusSeconds = values['status-seconds'] === undefined ? 5 : wholeNumber(values['status-seconds'] as string, 0, 3600)
  if (statusSeconds === undefined) return usage('--status-seconds: a whole number from 0 to 3600')
  const duration = values.duration === undefined ? undefined : wholeNumber(values.duration as string, 1, MAX_DURATION_SECONDS)
  if (values.duration !== undefined && duration === undefined) return usage(`--duration: a whole number of seconds from 1 to ${MAX_DURATION_SECONDS}`)
  const report = reportFiles(values.report as string | undefined)
  if (report !== undefined) {
    try {
      await access(dirname(report.json), constants.W_OK)
    } catch {
      return usage(`--report: cannot write in ${dirname(report.json)}`)
    }
  }

  const loaded = await loadConfigFile(values.config as string, io.env)
  if (!loaded.ok) return usage(loaded.error)
  const config: AgentConfig = { ...loaded.config, broker: { ...loaded.config.broker, url: broker } }
  const logger = createLogger({ level: (level ?? config.logLevel) as LogLevel, write: io.stdout })
  const observer = new FleetObserver()
  const started = await startFleet({
    config,
    devices,
    logger,
    observer,
    connections,
    topicPlan: plan,
    ...(io.version !== undefined && { version: io.version }),
    ...(values['id-prefix'] !== undefined && { idPrefix: values['id-prefix'] as string }),
    ...(values['state-dir'] !== undefined && { stateDir: values['state-dir'] as string }),
  })
  if (!started.ok) {
    io.stderr(`gwmo-agent simulate: ${started.error}`)
    return { kind: 'exit', code: started.error.startsWith('--') ? exit.usage : exit.failure }
  }
  const stream = io.status ?? process.stderr
  const stopStatus = statusSeconds > 0 ? startStatus(observer, stream, statusSeconds) : () => {}
  const { fleet } = started
  const requestStop = io.requestStop ?? (() => process.kill(process.pid, 'SIGTERM'))
  const ending = duration === undefined ? undefined : setTimeout(requestStop, duration * 1000)
  const stop = async () => {
    clearTimeout(ending)
    // What the run saw, before stopping adds its own session ends and offline devices.
    const seen = fleetReport(observer)
    stopStatus()
    await fleet.stop()
    if (report === undefined) return io.stdout(reportMarkdown(seen).trimEnd())
    await writeFile(report.json, JSON.stringify(seen, null, 2) + '\n')
    await writeFile(report.markdown, reportMarkdown(seen, report.svgName))
    await writeFile(report.svg, reportSvg(seen))
  }
  return { kind: 'simulating', fleet: { devices: fleet.devices, stop }, logger, config }
}

/** The report's three files: FILE (JSON), then FILE.md and FILE.svg, a `.json` ending left out of those. */
function reportFiles(file: string | undefined): { json: string; markdown: string; svg: string; svgName: string } | undefined {
  if (file === undefined) return undefined
  const json = resolve(file)
  const base = json.replace(/\.json$/i, '')
  return { json, markdown: `${base}.md`, svg: `${base}.svg`, svgName: `${base.slice(dirname(base).length + 1)}.svg` }
}
