/**
 * The agent as a program holds it (binding.md §8): objects whose callbacks the program provides, defined before
 * or after the start, then start and stop. The command line runs the agent through this too (cli.ts), and the
 * library entry (src/lib.ts) hands it out.
 */
import { readObjectsDir } from '../objects/index.ts'
import type { AgentConfig } from '../config.ts'
import { ConfigError, GwmoError, InvalidArgumentError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { canonicalFormat } from '../tree/formats.ts'
import type { ExternalNode, ExternalNodeShape } from '../tree/index.ts'
import { startAgent, type Agent } from './agent.ts'

/** An object of the program: its node in the tree and its callbacks (external.ts), each optional. */
export type ObjectDefinition = Partial<ExternalNodeShape> & ExternalNode

export interface EmbeddedOptions {
  logger: Logger
  /** The agent's version, for `./DevDetail/Ext/GwmoAgent/Version`. */
  version?: string
  /** A directory standing for `/` where the device's description is read (tests). */
  sysroot?: string
  /** Reads the configuration's `objectsDir` at the start (the command line has read it with the file). */
  readObjectsDir?: boolean
}

type Mount = { uri: string; shape: ExternalNodeShape; node: ExternalNode }

const CALLBACKS = ['get', 'replace', 'exec'] as const

/** The shape and callbacks of a definition, or the reason it is refused (named by its path and key). */
function mountOf(path: string, definition: ObjectDefinition): Mount {
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

export class EmbeddedAgent {
  readonly #config: AgentConfig
  readonly #options: EmbeddedOptions
  readonly #defined: Mount[] = []
  #agent: Agent | undefined
  #starting: Promise<void> | undefined

  constructor(config: AgentConfig, options: EmbeddedOptions) {
    this.#config = config
    this.#options = options
  }

  /**
   * Puts a node of the program's at `path` (binding.md §8: the same ACL, format, transaction and size rules as
   * the configuration's objects). Before the start it is mounted with them; once running, at once. A bad
   * definition throws `InvalidArgumentError` naming the path and the key.
   */
  defineObject(path: string, definition: ObjectDefinition): void {
    const mount = mountOf(path, definition)
    const agent = this.#agent
    if (agent === undefined) {
      if (this.#starting !== undefined) throw new InvalidArgumentError(`defineObject ${path}: the agent is starting`)
      this.#defined.push(mount)
      return
    }
    const mounted = agent.tree.mount(mount.uri, mount.shape, mount.node)
    if (!mounted.ok) throw new InvalidArgumentError(`defineObject ${mounted.error}`)
  }

  /** Starts the agent; rejects with a one-line reason (configuration, state, broker, objects) and starts nothing. */
  start(): Promise<void> {
    return (this.#starting ??= this.#start())
  }

  async #start(): Promise<void> {
    let config = this.#config
    if (this.#options.readObjectsDir === true && config.objectsDir !== undefined) {
      const dropIns = await readObjectsDir(config.objectsDir, config.objects)
      if (!dropIns.ok) throw new ConfigError(`config: ${dropIns.error}`)
      config = { ...config, objects: [...config.objects, ...dropIns.objects] }
    }
    const { logger, version, sysroot } = this.#options
    const started = await startAgent({
      config, logger, mounts: this.#defined, ...(version !== undefined && { version }), ...(sysroot !== undefined && { sysroot }),
    })
    if (!started.ok) {
      this.#starting = undefined
      throw new GwmoError(started.error, 'GWMO_START')
    }
    this.#agent = started.agent
  }

  /** Ends sessions, stores the state and disconnects; callbacks still running see their signal aborted. */
  async stop(): Promise<void> {
    await this.#starting?.catch(() => undefined)
    await this.#agent?.stop()
  }

  /** @internal The running agent (tests, the command line). */
  get agent(): Agent | undefined {
    return this.#agent
  }
}
