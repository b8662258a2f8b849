/**
 * A DM Server and a DM Gateway for a whole fleet of devices: the peers of `test/peers/` (their own SyncML,
 * credentials and session code, not the agent's), one instance per device so that every device's nonces and
 * sessions stay its own, all of them behind one MQTT connection per party. A message on the party's `dm`
 * topic goes to the instance of the device named in its SyncHdr Source.
 */
import type { MqttClient } from 'mqtt'
import { DmServer, type DmServerOptions } from '../../test/peers/dm-server.ts'
import { ASSOCIATED_GATEWAY, Gateway, type GatewayOptions } from '../../test/peers/gateway.ts'
import { connectPeer, subscribe, topicFor, userProperties } from '../../test/peers/mqtt.ts'
import type { PartySpec } from '../../test/fixtures/gwmo/parties.ts'

type Deliver = (topic: string, payload: Buffer, contentType: string | undefined, props: Record<string, string>) => Promise<void>

/** The party's `handle` (private to the peers: a fleet member is fed by its fleet, not by its own client). */
function handlerOf(party: DmServer | Gateway): Deliver {
  return (party['handle'] as Deliver).bind(party)
}

class FleetServer extends DmServer {
  constructor(options: DmServerOptions, private readonly shared: MqttClient) {
    super(options)
  }

  override async start(): Promise<void> {}

  override async stop(): Promise<void> {}

  protected override mqtt(): MqttClient {
    return this.shared
  }
}

class FleetGateway extends Gateway {
  constructor(options: GatewayOptions, private readonly shared: MqttClient) {
    super(options)
  }

  override async start(): Promise<void> {}

  override async stop(): Promise<void> {}

  protected override mqtt(): MqttClient {
    return this.shared
  }
}

/** The SyncHdr Source of a SyncML XML message: the device a message on a party's topic comes from. */
const HEADER_SOURCE = /<SyncHdr\b[\s\S]*?<Source>\s*<LocURI>([^<]*)<\/LocURI>/

function unescapeXml(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&')
}

/** One party (server or gateway) speaking to every device of the fleet over one connection. */
export class FleetParty<P extends DmServer | Gateway> {
  private readonly members = new Map<string, { party: P; deliver: Deliver; chain: Promise<void> }>()
  /** Messages whose sender is not a device of the fleet (or that are not XML). */
  unknown = 0

  private constructor(
    readonly client: MqttClient,
    private readonly make: (deviceId: string, client: MqttClient) => P,
  ) {}

  static async start<P extends DmServer | Gateway>(
    brokerUrl: string,
    partyId: string,
    make: (deviceId: string, client: MqttClient) => P,
    topicPrefix?: string,
  ): Promise<FleetParty<P>> {
    const client = await connectPeer(brokerUrl, { clientId: `fleet-${partyId}-${process.pid}-${Math.random().toString(16).slice(2, 8)}` })
    const fleet = new FleetParty(client, make)
    client.on('message', (topic, payload, packet) => fleet.route(topic, payload, packet.properties))
    await subscribe(client, topicFor(partyId, 'dm', topicPrefix))
    return fleet
  }

  /** The party as `deviceId` knows it (created on first use). */
  member(deviceId: string): P {
    let member = this.members.get(deviceId)
    if (member === undefined) {
      const party = this.make(deviceId, this.client)
      member = { party, deliver: handlerOf(party), chain: Promise.resolve() }
      this.members.set(deviceId, member)
    }
    return member.party
  }

  get size(): number {
    return this.members.size
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.client.end(false, {}, () => resolve()))
  }

  private route(topic: string, payload: Buffer, properties: { contentType?: string; userProperties?: Record<string, string | string[]> } | undefined): void {
    const source = HEADER_SOURCE.exec(payload.toString('utf8'))?.[1]
    if (source === undefined) {
      this.unknown++
      return
    }
    const deviceId = unescapeXml(source.trim())
    this.member(deviceId)
    const member = this.members.get(deviceId)!
    // One device's messages in order, as a peer with its own connection would see them.
    member.chain = member.chain
      .then(() => member.deliver(topic, payload, properties?.contentType, userProperties(properties?.userProperties)))
      .catch(() => {
        this.unknown++
      })
  }
}

export interface FleetPeers {
  server: FleetParty<DmServer>
  gateway: FleetParty<Gateway>
  stop(): Promise<void>
}

export interface FleetPeersOptions {
  topicPrefix?: string
  /** The DM Server's credentials as one device's server instance holds them (tests: a server a device cannot satisfy). */
  serverFor?: (deviceId: string) => PartySpec
}

/** A fleet server for `serverSpec` and a fleet gateway for `gatewaySpec`, with the credentials of the factory accounts. */
export async function startFleetPeers(brokerUrl: string, serverSpec: PartySpec, gatewaySpec: PartySpec, options: FleetPeersOptions = {}): Promise<FleetPeers> {
  const { topicPrefix } = options
  const credentials = (p: PartySpec) => ({
    serverName: p.serverName,
    serverPassword: p.serverPassword,
    clientName: p.clientName,
    clientPassword: p.clientPassword,
    ...(topicPrefix !== undefined && { topicPrefix }),
  })
  const server = await FleetParty.start(
    brokerUrl,
    serverSpec.serverId,
    (deviceId, client) => new FleetServer({ brokerUrl, serverId: serverSpec.serverId, deviceId, ...credentials(options.serverFor?.(deviceId) ?? serverSpec) }, client),
    topicPrefix,
  )
  const gateway = await FleetParty.start(
    brokerUrl,
    gatewaySpec.serverId,
    (deviceId, client) => new FleetGateway({ brokerUrl, gatewayId: gatewaySpec.serverId, deviceId, ...credentials(gatewaySpec) }, client),
    topicPrefix,
  )
  return { server, gateway, stop: async () => void (await Promise.all([server.stop(), gateway.stop()])) }
}

export interface DetectionOutcome {
  deviceId: string
  /** ServerIDs of the Bootstrapped DMS List the gateway received. */
  dmsList: string[]
  /** Whether the server received the Associated Gateway alert with the gateway's address. */
  associated: boolean
}

/**
 * The detection flow for one device (binding.md §4.1–4.3): the gateway's Device Detection Alert with sharing
 * allowed, the Bootstrapped DMS List back to the gateway, then the Associated Gateway at the server.
 */
export async function detectionFlow(peers: FleetPeers, deviceId: string, gwAddress: string, timeoutMs: number): Promise<DetectionOutcome> {
  const dmsList = await peers.gateway.member(deviceId).detect({ gwAddress, share: true, timeoutMs })
  const server = peers.server.member(deviceId)
  const alert = await server.waitFor(
    () => server.sessions.flatMap((s) => s.genericAlerts).find((a) => a.type === ASSOCIATED_GATEWAY && a.data.includes(gwAddress)),
    timeoutMs,
    'Associated Gateway',
  )
  return { deviceId, dmsList, associated: alert !== undefined }
}

/** Runs `run` over `items`, at most `limit` at once; results in input order. */
export async function withLimit<T, R>(items: readonly T[], limit: number, run: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await run(items[index]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}
