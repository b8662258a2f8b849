/**
 * A fleet of virtual End Devices in one process, for gateway and server vendors who need many devices to test
 * against. Each is a whole agent (`startAgent`): its own DevId, tree, AgentState, session manager and GwMO
 * layer; they differ only in DevId and share one MQTT connection or a small pool (`shared-mqtt.ts`).
 *
 * Every device starts from the configuration's `factoryBootstrap`, so all hold the same accounts. Trees live
 * in memory unless a state folder is given, in which case each device keeps its own folder under it and a
 * restart resumes where the fleet left off.
 *
 * What all devices hold alike is held once: the factory document is read and decoded once, and the factory
 * tree of the first device is the base every device's tree shares (`TreeOptions.base`), each keeping only
 * what differs (its DevId, its nonces, what its parties change).
 */
import { join } from 'node:path'
import { readBrokerTls, type AgentConfig } from '../config.ts'
import type { LocationSource, NetworkLocation } from '../gwmo/index.ts'
import type { Logger } from '../log.ts'
import { createSharedMqtt, type TopicPlan } from '../transport/shared-mqtt.ts'
import { DiscardingStore } from '../store/index.ts'
import { startAgent, type Agent } from './agent.ts'
import type { FleetObserver } from './simulate-observe.ts'
import type { SessionEndInfo } from '../session/index.ts'
import { describeDevice, readDevice } from './device-info.ts'
import { buildFactoryTree, decodeFactoryDocument, readFactoryDocument } from './factory.ts'

/** Locally administered MAC addresses (IEEE 802, U/L bit set): never a real device's. */
export const DEFAULT_ID_PREFIX = 'mac:02-00'

export interface SimulateOptions {
  /** The agent configuration every device shares; `deviceId` and `stateDir` are replaced per device. */
  config: AgentConfig
  devices: number
  idPrefix?: string
  /** One folder per device under this; in memory when absent. */
  stateDir?: string
  /** MQTT connections shared by the fleet (device `i` uses connection `i mod connections`). */
  connections?: number
  topicPlan?: TopicPlan
  logger: Logger
  /** How many devices start at once; the rest wait, so a big fleet does not open every store in one go. */
  startConcurrency?: number
  onStarted?: (count: number) => void
  /** The agent's version (`./DevDetail/Ext/GwmoAgent/Version`). */
  version?: string
  /** Watches every device's port and sessions, for the live status and the report. */
  observer?: FleetObserver
}

export interface SimulatedDevice {
  readonly deviceId: string
  readonly agent: Agent
}

export interface Fleet {
  readonly devices: readonly SimulatedDevice[]
  /** Stops every device (sessions ended, trees flushed, `offline` published), then the shared connections. */
  stop(): Promise<void>
}

export type FleetResult = { ok: true; fleet: Fleet } | { ok: false; error: string }

const MAC_OCTETS = 6

/**
 * The DevIds of a fleet. A `mac:` prefix with fewer than six octets is completed with the device number
 * (`mac:02-00` → `mac:02-00-00-00-00-00`, `…-00-01`, …); any other prefix gets the decimal number appended.
 */
export function fleetDeviceIds(prefix: string, count: number): { ok: true; ids: string[] } | { ok: false; error: string } {
  const mac = /^mac:((?:[0-9a-f]{2})(?:-[0-9a-f]{2})*)-?$/i.exec(prefix)
  if (mac) {
    const given = mac[1]!.split('-').length
    const free = MAC_OCTETS - given
    if (free < 1 || count > 256 ** free) return { ok: false, error: `--id-prefix: ${prefix} leaves room for ${free < 1 ? 0 : 256 ** free} devices, not ${count}` }
    const head = `mac:${mac[1]!.toLowerCase()}`
    const ids: string[] = []
    for (let i = 0; i < count; i++) {
      let tail = ''
      for (let octet = free - 1; octet >= 0; octet--) tail += '-' + (Math.floor(i / 256 ** octet) % 256).toString(16).padStart(2, '0')
      ids.push(head + tail)
    }
    return { ok: true, ids }
  }
  if (prefix.startsWith('mac:')) return { ok: false, error: `--id-prefix: ${prefix} is not a MAC address prefix (mac:02-00)` }
  const width = String(Math.max(0, count - 1)).length
  return { ok: true, ids: Array.from({ length: count }, (_, i) => prefix + String(i).padStart(width, '0')) }
}

/**
 * The store of an in-memory fleet keeps nothing: the tree and state live in the engines themselves, and an
 * encoded copy per device would double their memory for a restart that an in-memory fleet never has.
 */
const discarding = new DiscardingStore()

/**
 * Where a virtual device is: its own address in 10.0.0.0/8, numbered like the device, behind one router. Fixed,
 * so the location monitor runs as on a real device but never reports a move. A reading is made when asked
 * (every poll), so a device keeps only its number.
 */
class FixedLocation implements LocationSource {
  constructor(private readonly index: number) {}

  read(): Promise<NetworkLocation> {
    const i = this.index
    return Promise.resolve({ addresses: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`], defaultGateway: '10.255.255.254' })
  }
}

export async function startFleet(options: SimulateOptions): Promise<FleetResult> {
  const { config, logger } = options
  if (!Number.isInteger(options.devices) || options.devices < 1) return { ok: false, error: '--devices: must be a whole number, at least 1' }
  const named = fleetDeviceIds(options.idPrefix ?? DEFAULT_ID_PREFIX, options.devices)
  if (!named.ok) return named
  const tls = await readBrokerTls(config.broker)
  if (!tls.ok) return tls
  const read = await readFactoryDocument(config.factoryBootstrap)
  if (!read.ok) return read
  const decoded = decodeFactoryDocument(read.document)
  if (!decoded.ok) return decoded
  const factoryDocument = decoded.document
  // Every device describes the host it runs on (binding.md §8), read once; the template holds it, so it is shared.
  const device = await readDevice({ version: options.version ?? 'dev' })
  const template = buildFactoryTree({ ...config, deviceId: named.ids[0]! }, factoryDocument, describeDevice(config.devInfo, device))
  if ('error' in template) return { ok: false, error: template.error }
  const treeBase = template.tree.asBase()

  const shared = createSharedMqtt({
    url: config.broker.url,
    ...(config.broker.username !== undefined && { username: config.broker.username }),
    ...(config.broker.password !== undefined && { password: config.broker.password }),
    ...tls.tls,
    clientIdPrefix: `${config.broker.clientId}-fleet-`,
    keepaliveSeconds: config.broker.keepaliveSeconds,
    prefix: config.topicPrefix,
    maxPacketSize: config.maxPacketSize,
    ...(options.connections !== undefined && { connections: options.connections }),
    ...(options.topicPlan !== undefined && { topicPlan: options.topicPlan }),
    logger,
  })

  const devices: SimulatedDevice[] = []
  const concurrency = Math.max(1, options.startConcurrency ?? 64)
  let next = 0
  let failure: string | undefined
  const startOne = async (index: number) => {
    const deviceId = named.ids[index]!
    const deviceConfig: AgentConfig = {
      ...config,
      deviceId,
      stateDir: options.stateDir === undefined ? config.stateDir : join(options.stateDir, encodeURIComponent(deviceId)),
    }
    const port = shared.port(deviceId)
    const watch = options.observer?.watch(port)
    const started = await startAgent({
      config: deviceConfig,
      logger: logger.child({ deviceId }),
      transport: watch ?? port,
      ...(watch && { onSessionEnd: (info: SessionEndInfo) => options.observer!.sessionEnded(watch, info) }),
      ...(options.stateDir === undefined && { store: discarding }),
      ...(config.location.sourceFile === undefined && { location: new FixedLocation(index) }),
      factoryDocument,
      treeBase,
      device,
    })
    if (!started.ok) {
      failure ??= `${deviceId}: ${started.error}`
      return
    }
    devices[index] = { deviceId, agent: started.agent }
  }
  const worker = async () => {
    while (failure === undefined && next < named.ids.length) {
      await startOne(next++)
      options.onStarted?.(next)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, named.ids.length) }, worker))

  const stop = async () => {
    await Promise.all(devices.map((device) => device?.agent.stop()))
    await shared.stop()
  }
  if (failure !== undefined) {
    await stop()
    return { ok: false, error: failure }
  }
  logger.info('fleet started', { devices: devices.length })
  return { ok: true, fleet: { devices, stop } }
}
