/**
 * The command line (binding.md §7): `gwmo-agent --config FILE [--log-level LEVEL]`, plus `--help` and `--version`,
 * `gwmo-agent tree …`, the stored tree read-only (tree-cli.ts), and two commands the entry loads from files of
 * their own beside the agent's bundle (main.ts): `gwmo-agent ddf …`, the tree's description (ddf-cli.ts), and
 * `gwmo-agent simulate …`, the fleet simulator (simulate-cli.ts).
 * Everything is checked before anything starts: a bad argument or configuration is one line on stderr and a
 * non-zero exit, never a half-started agent.
 */
import { parseArgs } from 'node:util'
import { loadConfigFile, type AgentConfig } from '../config.ts'
import { createLogger, type LogLevel, type Logger } from '../log.ts'
import { EmbeddedAgent } from './embedded.ts'
import type { runSimulateCli } from './simulate-cli.ts'
import type { Fleet } from './simulate.ts'
import { runTreeCli, TREE_USAGE } from './tree-cli.ts'
import type { runDdfCli } from './ddf-cli.ts'

export const USAGE = `usage: gwmo-agent --config FILE [--log-level debug|info|warn|error]
       ${TREE_USAGE}   (the stored tree and pending alerts, read-only)
       gwmo-agent ddf --config FILE   (the tree's description, OMA DM DDF 1.2)
       gwmo-agent simulate --devices N --broker URL --config FILE [...]   (see simulate --help)
       gwmo-agent --help | --version

Runs the OMA DM GwMO End Device agent. FILE is the JSON configuration (see README).
Secrets may come from GWMO_BROKER_PASSWORD, GWMO_USER_PIN and GWMO_NETWORK_ID instead.`

const LOG_LEVELS = new Set(['debug', 'info', 'warn', 'error'])

/** Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage or configuration. */
export const EXIT = Object.freeze({ ok: 0, failure: 1, usage: 2 })

export interface CliIo {
  argv: string[]
  env: Record<string, string | undefined>
  stdout: (line: string) => void
  stderr: (line: string) => void
  version: string
  /** The fleet simulator's command line, when it is installed beside the agent. */
  loadSimulator?: () => { runSimulateCli: typeof runSimulateCli } | undefined
  /** `gwmo-agent ddf`, when it is installed beside the agent. */
  loadDdf?: () => { runDdfCli: typeof runDdfCli } | undefined
}

export type CliStart =
  | { kind: 'exit'; code: number }
  | { kind: 'running'; agent: EmbeddedAgent; logger: Logger; config: AgentConfig }
  | { kind: 'simulating'; fleet: Fleet; logger: Logger; config: AgentConfig }

export async function runCli(io: CliIo): Promise<CliStart> {
  if (io.argv[0] === 'simulate') {
    const simulator = io.loadSimulator?.()
    if (simulator === undefined) {
      io.stderr('gwmo-agent simulate: the fleet simulator is not installed beside this agent (gwmo-agent-simulate.js, built by npm run build)')
      return { kind: 'exit', code: EXIT.usage }
    }
    return simulator.runSimulateCli({ ...io, argv: io.argv.slice(1) }, EXIT)
  }
  if (io.argv[0] === 'tree') return runTreeCli({ ...io, argv: io.argv.slice(1) }, EXIT)
  if (io.argv[0] === 'ddf') {
    const ddf = io.loadDdf?.()
    if (ddf !== undefined) return ddf.runDdfCli({ ...io, argv: io.argv.slice(1) }, EXIT)
    io.stderr('gwmo-agent ddf: not installed beside this agent (gwmo-agent-ddf.js, built by npm run build)')
    return { kind: 'exit', code: EXIT.usage }
  }
  let values: { config?: string; 'log-level'?: string; help?: boolean; version?: boolean }
  try {
    ;({ values } = parseArgs({
      args: io.argv,
      options: {
        config: { type: 'string', short: 'c' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
      strict: true,
      allowPositionals: false,
    }))
  } catch (error) {
    io.stderr(`gwmo-agent: ${(error as Error).message}`)
    return { kind: 'exit', code: EXIT.usage }
  }
  if (values.help) {
    io.stdout(USAGE)
    return { kind: 'exit', code: EXIT.ok }
  }
  if (values.version) {
    io.stdout(io.version)
    return { kind: 'exit', code: EXIT.ok }
  }
  const level = values['log-level']
  if (level !== undefined && !LOG_LEVELS.has(level)) {
    io.stderr(`gwmo-agent: --log-level: must be one of debug, info, warn, error`)
    return { kind: 'exit', code: EXIT.usage }
  }
  if (values.config === undefined) {
    io.stderr('gwmo-agent: --config FILE is required')
    return { kind: 'exit', code: EXIT.usage }
  }
  const loaded = await loadConfigFile(values.config, io.env)
  if (!loaded.ok) {
    io.stderr(`gwmo-agent: ${loaded.error}`)
    return { kind: 'exit', code: EXIT.usage }
  }
  const config = loaded.config
  const logger = createLogger({ level: (level ?? config.logLevel) as LogLevel, write: io.stdout }, { deviceId: config.deviceId })
  // GWMO_SYSROOT: a directory standing for `/` where the device's description is read (tests, device-info.ts).
  const sysroot = io.env.GWMO_SYSROOT
  // The same entry a program that embeds the agent uses (src/lib.ts).
  const agent = new EmbeddedAgent(config, { logger, version: io.version, ...(sysroot && { sysroot }) })
  try {
    await agent.start()
  } catch (error) {
    io.stderr(`gwmo-agent: ${(error as Error).message}`)
    return { kind: 'exit', code: EXIT.failure }
  }
  return { kind: 'running', agent, logger, config }
}
