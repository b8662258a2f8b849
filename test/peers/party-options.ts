/** What a scripted DM party is configured with, and how a test scripts its sessions. */
import type { AuthType } from './auth.ts'
import type { OutCommand } from './commands.ts'
import type { ConnectOptions } from './mqtt.ts'
import type { GenericAlert, PartySession } from './session-record.ts'

export interface TrafficEvent {
  direction: 'in' | 'out'
  topic: string
  summary: string
}

/** What every peer is configured with besides its own LocURI: where it connects and both sides' credentials. */
export type PeerBaseOptions = Pick<
  PartyOptions,
  'brokerUrl' | 'deviceId' | 'serverName' | 'serverPassword' | 'clientName' | 'clientPassword' | 'serverNonce' |
  'clientNonce' | 'authType' | 'encoding' | 'topicPrefix' | 'mqtt' | 'onTraffic' | 'maxMsgSize' | 'http'
>

export interface PartyOptions {
  brokerUrl: string
  /** The party's LocURI: the ServerID of the device's account for it. */
  partyId: string
  deviceId: string
  /** SRVCRED: how the party authenticates itself to the device. */
  serverName: string
  serverPassword: string
  /** CLCRED: what the party expects from the device. */
  clientName: string
  clientPassword: string
  /** b64 nonce the device gave the party (SRVCRED AAuthData); the factory nonce by default, empty. */
  serverNonce?: string
  /** b64 nonce the party gave the device (CLCRED AAuthData); the factory nonce by default, empty. */
  clientNonce?: string
  authType?: AuthType
  encoding?: 'xml' | 'wbxml'
  /** Answer the first message of a device-opened session 407 + Chal whatever it carries: `once` or in `every` session. */
  challenge407?: 'never' | 'once' | 'every'
  /** Send `Cred` at all (false: the `--no-auth` mode, to see the device refuse). */
  sendCred?: boolean
  /** Status code for a Generic Alert received (200 by default; OMA DM Protocol 1.2, 2.3.7 allows 202). */
  genericAlertStatus?: (alert: GenericAlert) => string
  /** Send a Status for the device's Results (on by default). */
  statusForResults?: boolean
  /** How many times to resend a batch after the device rejected our credentials. */
  maxAuthRetries?: number
  topicPrefix?: string
  /** The MaxMsgSize announced in the SyncHdr of every message (OMA DM RepPro 1.2, MetInf); none by default. */
  maxMsgSize?: number
  mqtt?: ConnectOptions
  onTraffic?: (event: TrafficEvent) => void
  /**
   * HTTP mode (binding.md §10): the device POSTs its messages to this party's own node:http(s) server and each
   * response is the party's answer; the broker then carries only what the party publishes (DM Notifications).
   */
  http?: HttpModeOptions
}

export interface HttpModeOptions {
  /** TLS: the server's certificate and key (PEM); `ca` set asks the device for a client certificate signed by it. */
  tls?: { cert: string; key: string; ca?: string }
  /** The RespURI of each message (a path on this server, or a whole URL), by session; none: no RespURI. */
  respUri?: (sessionId: string) => string | undefined
}

/**
 * One turn's commands, or a function that decides them when the turn comes (from what the session recorded so
 * far); an empty batch or `undefined` closes the session.
 */
export type Batch = OutCommand[] | ((session: PartySession) => OutCommand[] | undefined)

/**
 * Called once when a device opens a session that has no queued plan: returns one batch (the commands of
 * Package 2, after which the session closes) or a list of batches (one a turn).
 */
export type Script = (session: PartySession) => OutCommand[] | Batch[] | undefined

export type ResolvedOptions = Required<Omit<PartyOptions, 'mqtt' | 'onTraffic' | 'genericAlertStatus' | 'serverNonce' | 'clientNonce' | 'maxMsgSize' | 'http'>> &
  Pick<PartyOptions, 'mqtt' | 'onTraffic' | 'genericAlertStatus' | 'maxMsgSize' | 'http'>

/** The defaults for what was not given (an option given as `undefined` counts as not given). */
export function resolveOptions(options: PartyOptions): ResolvedOptions {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as PartyOptions
  return {
    authType: 'md5',
    encoding: 'xml',
    challenge407: 'never',
    sendCred: true,
    statusForResults: true,
    maxAuthRetries: 2,
    topicPrefix: 'omadm/v1',
    ...given,
  }
}
