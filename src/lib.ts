/**
 * The library entry (`require('gwmo-agent')`, binding.md §8): the agent embedded in a program, which defines
 * objects whose value or action it provides, under the same ACL, format, transaction and size rules as the
 * configuration's objects. The command line runs the agent through the same entry.
 *
 *   const agent = createAgent(config)   // the configuration the command line reads from its file
 *   agent.defineObject('./Vendor/App/Version', { get: async () => '1.4.2' })
 *   await agent.start()
 *   await agent.stop()
 */
import { parseConfig } from './config.ts'
import { ConfigError, InvalidArgumentError } from './errors.ts'
import { createLogger } from './log.ts'
import { EmbeddedAgent, type ProgramObject } from './runtime/embedded.ts'
import { canonicalFormat } from './tree/formats.ts'
import type { ExternalNode, ExternalNodeShape } from './tree/external.ts'

export { ConfigError, GwmoError, InvalidArgumentError, SyncMLStatusError } from './errors.ts'
export type { ExternalCall as CallInfo, ExternalValue as Value } from './tree/external.ts'
export type { NodeFormat } from './tree/types.ts'

/**
 * An object of the program: where it sits in the tree (`format`, `chr` when absent; `type`; `acl`, a leaf without
 * one gets `Get=*` alone; `maxBytes`, 4096 when absent; `value`, the first value of a leaf the tree keeps) and
 * its callbacks, each optional: `get` at each Get, `replace` once the message's (or its Atomic's) commands have
 * succeeded, `exec` at each Exec. A callback answers a status by throwing `SyncMLStatusError`; any other error
 * is 500, logged, never a crash.
 */
export type ObjectDefinition = Partial<ExternalNodeShape> & ExternalNode

export interface AgentOptions {
  /** Where the configuration's relative paths are taken from; the working directory when absent. */
  baseDir?: string
  /** Where the secrets the configuration may leave out are read (GWMO_BROKER_PASSWORD…); `process.env` when absent. */
  env?: Record<string, string | undefined>
  /** The log's level; the configuration's `logLevel` when absent. */
  logLevel?: 'debug' | 'info' | 'warn' | 'error'
  /** Where the log's JSON lines go; stdout when absent. */
  log?: (line: string) => void
}

export interface GwmoAgent {
  /**
   * Puts an object at `path` (`./Vendor/…`): before `start`, mounted with the configuration's objects; after, at
   * once. Throws `InvalidArgumentError` naming the path and the key of a bad definition.
   */
  defineObject(path: string, definition: ObjectDefinition): void
  /** Connects and runs; rejects with a one-line reason (state, broker, objects) and leaves nothing running. */
  start(): Promise<void>
  /** Ends sessions, stores the state, publishes `offline` and disconnects; callbacks see their signal aborted. */
  stop(): Promise<void>
}

/** Checks `config` (the JSON the command line reads; throws `ConfigError` naming the key) and makes an agent. */
export function createAgent(config: object, options: AgentOptions = {}): GwmoAgent {
  const parsed = parseConfig(config, options.env ?? process.env, { baseDir: options.baseDir ?? process.cwd() })
  if (!parsed.ok) throw new ConfigError(parsed.error)
  const write = options.log ?? ((line: string) => void process.stdout.write(line + '\n'))
  const logger = createLogger({ level: options.logLevel ?? parsed.config.logLevel, write }, { deviceId: parsed.config.deviceId })
  const agent = new EmbeddedAgent(parsed.config, { logger, version: process.env.GWMO_AGENT_VERSION ?? 'dev', readObjectsDir: true })
  return {
    defineObject: (path, definition) => agent.defineObject(programObject(path, definition)),
    start: () => agent.start(),
    stop: () => agent.stop(),
  }
}

const CALLBACKS = ['get', 'replace', 'exec'] as const

/** A definition as the tree takes it, or `InvalidArgumentError` naming the path and the key. */
function programObject(path: string, definition: ObjectDefinition): ProgramObject {
  const fail = (key: string, why: string) => new InvalidArgumentError(`defineObject ${path}: ${key}: ${why}`)
  if (typeof path !== 'string') throw new InvalidArgumentError('defineObject: the path must be a string')
  if (typeof definition !== 'object' || definition === null) throw fail('definition', 'must be an object')
  const { format = 'chr', type, acl, maxBytes, value } = definition
  if (canonicalFormat(format) === undefined) throw fail('format', `unknown format ${String(format)}`)
  for (const [key, given] of Object.entries({ type, acl, value })) {
    if (given !== undefined && typeof given !== 'string') throw fail(key, 'must be a string')
  }
  if (maxBytes !== undefined && !(Number.isSafeInteger(maxBytes) && maxBytes >= 1)) throw fail('maxBytes', 'must be a whole number ≥ 1')
  const node: ExternalNode = {}
  for (const key of CALLBACKS) {
    const callback = definition[key] as ((...args: never[]) => unknown) | undefined
    if (callback === undefined) continue
    if (typeof callback !== 'function') throw fail(key, 'must be a function')
    // Called as the program wrote it, whatever object the tree holds it in.
    ;(node as Record<string, unknown>)[key] = (...args: never[]) => callback.apply(definition, args)
  }
  const shape: ExternalNodeShape = { format, ...(type !== undefined && { type }), ...(acl !== undefined && { acl }),
    ...(maxBytes !== undefined && { maxBytes }), ...(value !== undefined && { value }) }
  return { uri: path, shape, node }
}
