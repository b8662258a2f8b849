/**
 * The local DM Bootstrap Server peer (binding.md §4.7): one bootstrap message, SyncML DM Add/Replace commands
 * (OMA DM Bootstrap 1.2, DM profile), on the device's `bootstrap` topic with the MQTT 5 user properties `SEC`
 * and `MAC` (hex HMAC-SHA1 of the payload as sent, DM Security 1.2, 5.1.7.2). No answer comes back.
 */
import { bootstrapKey, bootstrapMac, type SecMethod } from './auth.ts'
import { add, addNode, type OutCommand } from './commands.ts'
import { connectPeer, CONTENT_TYPE, disconnect, publish, topicFor, type ConnectOptions } from './mqtt.ts'
import { buildMessage } from './syncml.ts'
import { xmlToWbxml } from './wbxml.ts'

/** A DM account (DMAcc MO, `urn:oma:mo:oma-dm-dmacc:1.0`, AppID w7) as a bootstrap writes it. */
export interface AccountSpec {
  /** The `<X>` of `./DMAcc/<X>`. */
  id: string
  serverId: string
  /** AppAddr/1/Addr, e.g. `mqtt://broker:1883/topic` or the server's URL. */
  addr: string
  addrType?: string
  name?: string
  /** DIGEST (syncml:auth-md5) unless told: BASIC, HMAC. */
  authType?: 'DIGEST' | 'BASIC' | 'HMAC'
  /** CLCRED: the device's credentials toward the party. */
  clientName: string
  clientPassword: string
  /** b64 initial nonce of CLCRED (AAuthData). */
  clientNonce?: string
  /** SRVCRED: the party's credentials toward the device. */
  serverName: string
  serverPassword: string
  serverNonce?: string
  /** `gateway` marks the account as a DM Gateway's (binding.md §1). */
  role?: 'gateway'
  /** Leaves of `Ext/GwmoAgent` (binding.md §10), e.g. `{ Binding: 'http', PollSeconds: '60' }`. */
  agent?: Record<string, string>
}

/**
 * The commands that create the account: an Add per node, interior nodes first with `Meta/Format` `node`
 * (a device need not create missing parents by itself), `AAuthData` as b64.
 */
export function buildAccountCommands(account: AccountSpec, root = './DMAcc'): OutCommand[] {
  const base = `${root}/${account.id}`
  const auth = (n: string, level: 'CLCRED' | 'SRVCRED', name: string, secret: string, nonce?: string): OutCommand[] => [
    addNode(`${base}/AppAuth/${n}`),
    add(`${base}/AppAuth/${n}/AAuthLevel`, level),
    add(`${base}/AppAuth/${n}/AAuthType`, account.authType ?? 'DIGEST'),
    add(`${base}/AppAuth/${n}/AAuthName`, name),
    add(`${base}/AppAuth/${n}/AAuthSecret`, secret),
    ...(nonce !== undefined ? [add(`${base}/AppAuth/${n}/AAuthData`, nonce, 'b64')] : []),
  ]
  return [
    addNode(base),
    add(`${base}/AppID`, 'w7'),
    add(`${base}/ServerID`, account.serverId),
    ...(account.name !== undefined ? [add(`${base}/Name`, account.name)] : []),
    addNode(`${base}/AppAddr`),
    addNode(`${base}/AppAddr/1`),
    add(`${base}/AppAddr/1/Addr`, account.addr),
    add(`${base}/AppAddr/1/AddrType`, account.addrType ?? 'URI'),
    add(`${base}/AAuthPref`, account.authType ?? 'DIGEST'),
    addNode(`${base}/AppAuth`),
    ...auth('1', 'CLCRED', account.clientName, account.clientPassword, account.clientNonce),
    ...auth('2', 'SRVCRED', account.serverName, account.serverPassword, account.serverNonce),
    ...(account.role || account.agent ? [addNode(`${base}/Ext`)] : []),
    ...(account.role ? [addNode(`${base}/Ext/GwMO`), add(`${base}/Ext/GwMO/Role`, account.role)] : []),
    ...(account.agent
      ? [addNode(`${base}/Ext/GwmoAgent`), ...Object.entries(account.agent).map(([leaf, value]) => add(`${base}/Ext/GwmoAgent/${leaf}`, value))]
      : []),
  ]
}

/** The bootstrap server's name (it has no LocURI, binding.md §1): its Source, and its identity on the broker. */
export const DEFAULT_SOURCE = 'bootstrap'

export interface BootstrapRequest {
  brokerUrl: string
  deviceId: string
  /** The commands to send, or a whole message as XML text (sent as is, or re-encoded for `wbxml`). */
  commands?: OutCommand[]
  xml?: string
  encoding: 'xml' | 'wbxml'
  sec: SecMethod
  /** The HMAC key as is; otherwise derived from `userPin`/`networkId` for the SEC method. */
  key?: string
  userPin?: string
  networkId?: string
  /** Send this MAC instead of the right one (negative tests). */
  macOverride?: string
  /** Source LocURI of the message. */
  source?: string
  topicPrefix?: string
  mqtt?: ConnectOptions
  /** Called with one line describing what was sent. */
  onTraffic?: (line: string) => void
}

export interface BootstrapPayload {
  payload: Uint8Array
  contentType: string
  mac: string
  userProperties: Record<string, string>
}

/** Builds the bytes and properties of a bootstrap message without sending it. */
export function buildBootstrap(req: Omit<BootstrapRequest, 'brokerUrl'>): BootstrapPayload {
  const xml =
    req.xml ??
    buildMessage({ sessionId: '0', msgId: '1', target: req.deviceId, source: req.source ?? DEFAULT_SOURCE }, req.commands ?? []).xml
  const payload = req.encoding === 'wbxml' ? xmlToWbxml(xml) : new Uint8Array(Buffer.from(xml, 'utf8'))
  const key = req.key ?? bootstrapKey(req.sec, { userPin: req.userPin, networkId: req.networkId })
  const mac = req.macOverride ?? bootstrapMac(key, payload)
  return {
    payload,
    contentType: req.encoding === 'wbxml' ? CONTENT_TYPE.wbxml : CONTENT_TYPE.xml,
    mac,
    userProperties: { SEC: req.sec, MAC: mac },
  }
}

/** Connects, publishes one bootstrap message (QoS 1), disconnects; returns what was sent. */
export async function sendBootstrap(req: BootstrapRequest): Promise<BootstrapPayload & { topic: string }> {
  const built = buildBootstrap(req)
  const topic = topicFor(req.deviceId, 'bootstrap', req.topicPrefix)
  // On the broker it is the server its message names as Source.
  const client = await connectPeer(req.brokerUrl, { as: req.source ?? DEFAULT_SOURCE, ...req.mqtt })
  try {
    await publish(client, topic, built.payload, { contentType: built.contentType, userProperties: built.userProperties })
    req.onTraffic?.(`out ${topic}: bootstrap ${req.encoding} ${built.payload.length} bytes SEC=${req.sec} MAC=${built.mac}`)
  } finally {
    await disconnect(client)
  }
  return { ...built, topic }
}
