/**
 * The agent as a program holds it (binding.md §8): objects whose callbacks the program provides, defined before
 * or after the start, then start and stop. The command line runs the agent through this too (cli.ts), and the
 * library entry (src/lib.ts) hands it out.
 */
import { readObjectsDir } from '../objects/index.ts'
import type { AgentConfig } from '../config.ts'
import { ConfigError, GwmoError, InvalidArgumentError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { ExternalNode, ExternalNodeShape } from '../tree/index.ts'
import { startAgent, type Agent } from './agent.ts'

/** A node of the program's (external.ts), checked by the library entry (src/lib.ts). */
export interface ProgramObject {
  uri: string
  shape: ExternalNodeShape
  node: ExternalNode
}

export interface EmbeddedOptions {
  logger: Logger
  /** The agent's version, for `./DevDetail/Ext/GwmoAgent/Version`. */
  version?: string
  /** A directory standing for `/` where the device's description is read (tests). */
  sysroot?: string
  /** Reads the configuration's `objectsDir` at the start (the command line has read it with the file). */
  readObjectsDir?: boolean
}

export class EmbeddedAgent {
  readonly #config: AgentConfig
  readonly #options: EmbeddedOptions
  readonly #defined: ProgramObject[] = []
  #agent: Agent | undefined
  #starting: Promise<void> | undefined

  constructor(config: AgentConfig, options: EmbeddedOptions) {
    this.#config = config
    this.#options = options
  }

  /**
   * Puts a node of the program's in the tree (binding.md §8: the same ACL, format, transaction and size rules as
   * the configuration's objects). Before the start it is mounted with them; once running, at once. Throws
   * `InvalidArgumentError` with the tree's reason when the tree refuses it.
   */
  defineObject(mount: ProgramObject): void {
    const agent = this.#agent
    if (agent === undefined) {
      if (this.#starting !== undefined) throw new InvalidArgumentError(`defineObject ${mount.uri}: the agent is starting`)
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
