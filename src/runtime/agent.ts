/**
 * The runtime: wires configuration, persistent state, the session engine, the GwMO behaviours and the MQTT
 * binding into one agent. Everything it builds belongs to the returned instance, so one process can hold many.
 */
import { mkdir, chmod, readFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { readBrokerTls, type AgentConfig } from '../config.ts'
import { installFumo, type Fumo } from '../fumo/index.ts'
import { installGwmo, type Gwmo, type LocationSource } from '../gwmo/index.ts'
import { checkProgramFile } from '../objects/run.ts'
import type { Logger } from '../log.ts'
import { AgentState } from '../session/agent-state.ts'
import type { Clock } from '../session/engine.ts'
import { createSessionManager, type SessionEndInfo, type SessionManager } from '../session/manager.ts'
import { createMqttTransport } from '../transport/bindings/mqtt.ts'
import { bindings } from '../transport/bindings/index.ts'
import { createHttpTransport } from '../transport/bindings/http.ts'
import type { InboundMessage, Transport } from '../session/port.ts'
import { DiskFiles, JournalStore, type Store } from '../store/index.ts'
import { accountTls, ManagementTree, readAccounts, updateDescription, type DeviceDescription, type ExternalNode, type ExternalNodeShape, type TreeBase } from '../tree/index.ts'
import { describeDevice, readDevice, unread } from './device-info.ts'
import { buildFactoryTree, readFactoryDocument, type FactoryDocument } from './factory.ts'
import { migrateLegacyFiles } from './migrate.ts'
import { installObjects } from '../objects/index.ts'
import { Poller } from './poll.ts'
import { mqttOptionsFromConfig } from './transport-options.ts'
import { beginRun, endRun } from './unclean-stop.ts'

/**
 * File names under `stateDir`: the store's journal (appended to, one record per commit) and its checkpoint
 * (written atomically), which hold the management tree and the agent's own state together (src/store).
 */
export const STATE_FILES = Object.freeze({ checkpoint: 'state.checkpoint', journal: 'state.journal' })

export interface AgentOptions {
  config: AgentConfig
  logger: Logger
  /** Replaces the MQTT binding (tests, the fleet simulator); accounts reached over HTTP still are (binding.md §10). */
  transport?: Transport
  /** Replaces the store on disk (tests, in-memory fleets). */
  store?: Store
  location?: LocationSource
  /** The factory document already read (a fleet reads and decodes its one document once). */
  factoryDocument?: FactoryDocument
  /** Tree nodes shared with other agents of the process (a fleet's factory tree), see `TreeOptions.base`. */
  treeBase?: TreeBase
  clock?: Clock
  random?: (n: number) => Uint8Array
  /** The agent's version, for `./DevDetail/Ext/GwmoAgent/Version` (the command line gives the bundle's). */
  version?: string
  /** A directory standing for `/` where the device's description is read (device-info.ts): tests. */
  sysroot?: string
  /** The device's description as the OS gives it, already read (a fleet reads it once for all its devices). */
  device?: DeviceDescription
  /** Told of every session's end (the fleet simulator's report). */
  onSessionEnd?: (info: SessionEndInfo) => void
  /** Nodes of the program that embeds the agent (src/lib.ts), mounted beside the configuration's objects. */
  mounts?: ReadonlyArray<{ uri: string; shape: ExternalNodeShape; node: ExternalNode }>
}

export interface Agent {
  readonly sessions: SessionManager
  readonly gwmo: Gwmo
  readonly tree: ManagementTree
  /** Ends sessions, flushes the tree and state, publishes `offline` and disconnects. */
  stop(): Promise<void>
}

export type StartResult = { ok: true; agent: Agent } | { ok: false; error: string }

const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

const systemRandom = (n: number): Uint8Array => new Uint8Array(randomBytes(n))

async function openStore(config: AgentConfig, logger: Logger): Promise<{ ok: true; store: Store } | { ok: false; error: string }> {
  try {
    // binding.md §6: the state files are readable by the agent's user alone.
    await mkdir(config.stateDir, { recursive: true, mode: 0o700 })
    await chmod(config.stateDir, 0o700)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error'
    return { ok: false, error: `stateDir: cannot use ${config.stateDir} (${code})` }
  }
  const storeLog = logger.child({ module: 'store' })
  const store = new JournalStore(new DiskFiles(config.stateDir, STATE_FILES), { warn: (line) => storeLog.warn(line) })
  const migrated = await migrateLegacyFiles(config.stateDir, store, storeLog)
  return migrated.ok ? { ok: true, store } : migrated
}

type TreeOpened = { ok: true; tree: ManagementTree; created: boolean; factoryServers: string[] } | { ok: false; error: string }

/**
 * The persisted tree, or on a first start the factory tree (and the servers it configured). Its own function,
 * so that the factory document and the configuration it reads are not kept alive by the agent's closures.
 */
async function openTree(store: Store, config: AgentConfig, document: FactoryDocument | undefined, base: TreeBase | undefined, description: DeviceDescription): Promise<TreeOpened> {
  let factoryServers: string[] = []
  const opened = await ManagementTree.open(store, {
    ...(base !== undefined && { base }),
    limits: config.limits,
    // The factory document is read only when the store holds no tree: a device that has run once never needs it again.
    factory: async () => {
      if (document === undefined) {
        const read = await readFactoryDocument(config.factoryBootstrap)
        if (!read.ok) return { error: read.error }
        document = read.document
      }
      const built = buildFactoryTree(config, document, description)
      if ('error' in built) return built
      factoryServers = built.serverIds
      return built.tree
    },
  })
  if (!opened.ok) return { ok: false, error: `tree: ${opened.error}` }
  return { ok: true, tree: opened.tree, created: opened.created, factoryServers }
}

export async function startAgent(options: AgentOptions): Promise<StartResult> {
  const { config } = options
  const logger = options.logger
  const clock = options.clock ?? systemClock
  const random = options.random ?? systemRandom

  let store = options.store
  if (store === undefined) {
    const opened = await openStore(config, logger)
    if (!opened.ok) return opened
    store = opened.store
  }
  const durable = store

  // binding.md §8: the device describes itself anew at every start, the configuration's values first.
  let device = options.device
  if (device === undefined) {
    device = await readDevice({ version: options.version ?? 'dev', ...(options.sysroot !== undefined && { root: options.sysroot }) })
    logger.debug('device description read', { ...device, unread: unread(device) })
  }
  const description = describeDevice(config.devInfo, device)

  const opened = await openTree(store, config, options.factoryDocument, options.treeBase, description)
  if (!opened.ok) return opened
  const tree = opened.tree
  if (!opened.created) {
    const updated = updateDescription(tree, description)
    if (!updated.ok) return { ok: false, error: `tree: ${updated.error}` }
    if (updated.changed.length > 0) {
      try {
        await tree.flush()
      } catch (error) {
        return { ok: false, error: `stateDir: cannot write the tree (${(error as NodeJS.ErrnoException).code ?? 'error'})` }
      }
      logger.info('device description updated', { nodes: updated.changed })
    }
  }

  const stateOpened = await AgentState.open(store, random)
  if (!stateOpened.ok) return { ok: false, error: stateOpened.error }
  const state = stateOpened.state
  try {
    await beginRun(tree, state, random, logger)
  } catch (error) {
    return { ok: false, error: `stateDir: cannot write the agent state (${(error as NodeJS.ErrnoException).code ?? 'error'})` }
  }

  let transport = options.transport
  if (transport === undefined) {
    const tls = await readBrokerTls(config.broker)
    if (!tls.ok) return tls
    transport = createMqttTransport(mqttOptionsFromConfig(config, tls.tls, logger))
  }
  // binding.md §10: accounts whose Binding is http are reached over HTTP(S), with their own CA and client certificate.
  const link = bindings(transport, createHttpTransport({
    logger,
    maxMsgSize: config.maxPacketSize,
    timeoutMs: config.session.timeoutSeconds * 1000,
    tlsFor: (node) => {
      const account = readAccounts(tree).find((a) => a.node === node)
      return account === undefined ? {} : accountTls(tree, account)
    },
  }))
  // Made before the sessions, which tell it of every session's end (the accounts may have changed).
  const poller = new Poller({ tree, clock, random: () => Buffer.from(random(4)).readUInt32BE() / 2 ** 32, open: (serverId) => void sessions.openSession(serverId, { alert: 1201 }) })

  const sessions = createSessionManager({
    deviceId: config.deviceId,
    tree,
    state,
    send: (message) => link.send(message),
    logger,
    clock,
    random,
    onSessionEnd: (info) => {
      poller.refresh()
      options.onSessionEnd?.(info)
    },
    constants: {
      sessionTimeoutMs: config.session.timeoutSeconds * 1000,
      retransmitCount: config.session.retries,
      retryBackoffBaseMs: config.session.retryBackoffSeconds * 1000,
      retryBackoffCapMs: config.session.maxBackoffSeconds * 1000,
      maxMsgSize: config.maxPacketSize,
      maxPendingAlertsPerParty: config.limits.pendingAlertsPerParty,
    },
  })

  // binding.md §8: the integrator's objects, in the tree before any message can reach it.
  const installed = await installObjects(tree, config.objects, { sessions, state, logger, ...(options.sysroot !== undefined && { root: options.sysroot }) })
  if (!installed.ok) return installed
  const objects = installed.objects
  for (const { uri, shape, node } of options.mounts ?? []) {
    const mounted = tree.mount(uri, shape, node)
    if (!mounted.ok) {
      objects.stop()
      return { ok: false, error: `objects: ${mounted.error}` }
    }
  }

  const gwmo = installGwmo({
    sessions,
    tree,
    state,
    deviceId: config.deviceId,
    config: {
      acceptDetectionFrom: config.acceptDetectionFrom,
      detectionsPerMinute: config.limits.detectionsPerMinute,
      ...(config.userPin !== undefined && { userPin: config.userPin }),
      ...(config.networkId !== undefined && { networkId: config.networkId }),
      location: config.location,
    },
    ...(options.location !== undefined && { location: options.location }),
    clock,
    logger,
  })

  // binding.md §9: the FUMO object, when the configuration has one; its Execs are served from now on.
  let fumo: Fumo | undefined
  if (config.fumo !== undefined) {
    const unusable = checkProgramFile(config.fumo.module)
    if (unusable !== undefined) return { ok: false, error: `config: fumo.module: ${config.fumo.module} ${unusable}` }
    let ca: Buffer | undefined
    try {
      if (config.fumo.ca !== undefined) ca = await readFile(config.fumo.ca)
    } catch (error) {
      return { ok: false, error: `config: fumo.ca: cannot read ${config.fumo.ca} (${(error as NodeJS.ErrnoException).code ?? 'error'})` }
    }
    const fumoMade = installFumo({ tree, state, sessions, config: config.fumo, stateDir: config.stateDir, logger, random, ...(ca !== undefined && { ca }) })
    if ('error' in fumoMade) return { ok: false, error: `tree: ${fumoMade.error}` }
    fumo = fumoMade
  }

  if (config.acceptDetectionFrom === 'any') {
    logger.warn('accepting Device Detection Alerts from any party, authenticated or not (acceptDetectionFrom: "any")')
  }

  const route = (message: InboundMessage): void => {
    const work =
      message.channel === 'dm' ? sessions.receive(message)
      : message.channel === 'notification' ? gwmo.onNotification(message)
      : gwmo.onBootstrap(message)
    void work.catch((error: unknown) => logger.error('inbound message handling failed', { channel: message.channel, error }))
  }

  // The broker's URL alone, not the whole configuration, stays alive with these closures (thousands in a fleet).
  const broker = config.broker.url
  let connectedBefore = false
  try {
    await link.start({
      message: route,
      // binding.md §2, §3: on every reconnection, once `online` is retained again, what waited for the broker goes
      // at once rather than at its timers. The first connection has no outage to make up for: the start opens a
      // session for every queued alert, and what waited for the broker until then has just gone out.
      online: () => {
        logger.debug('online', { broker })
        if (connectedBefore) sessions.reconnected()
        connectedBefore = true
      },
      offline: () => logger.debug('offline', { broker }),
    })
  } catch (error) {
    return { ok: false, error: `broker: ${(error as Error).message}` }
  }

  // After a factory bootstrap, a session with every server it configured (OMA DM Bootstrap 1.2: "at the next
  // practical opportunity"); on every start, a session with each server that still has alerts to deliver.
  const servers = new Set([...opened.factoryServers, ...state.serversWithPendingAlerts()])
  const known = new Set(readAccounts(tree).map((account) => account.serverId))
  for (const serverId of servers) {
    if (known.has(serverId)) void sessions.openSession(serverId, { alert: 1201 })
  }
  gwmo.start()
  fumo?.start()
  poller.refresh()
  // Which runtime runs the bundle (Node or Bun) is the first thing to know when a fleet behaves differently.
  const runtime = process.versions.bun !== undefined ? `bun ${process.versions.bun}` : `node ${process.versions.node}`
  logger.info('started', { deviceId: config.deviceId, firstStart: opened.created, runtime })

  let stopping: Promise<void> | undefined
  return {
    ok: true,
    agent: {
      sessions,
      gwmo,
      tree,
      stop: () =>
        (stopping ??= (async () => {
          poller.stop()
          fumo?.stop()
          objects.stop()
          await gwmo.stop()
          await sessions.stop()
          await tree.flush()
          await endRun(state)
          // The journal folded into a checkpoint: the next start reads one file.
          await durable.checkpoint().catch((error: unknown) => logger.error('store checkpoint failed', { error }))
          await link.stop()
        })()),
    },
  }
}
