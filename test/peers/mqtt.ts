/**
 * The MQTT side of the peers (binding.md §2): topics, an MQTT 5 connection, and QoS 1 publishing with the
 * content type and user properties the binding uses.
 */
import mqtt, { type MqttClient } from 'mqtt'

export type PeerChannel = 'dm' | 'notification' | 'bootstrap' | 'status'

export const DEFAULT_PREFIX = 'omadm/v1'

export const CONTENT_TYPE = {
  xml: 'application/vnd.syncml.dm+xml',
  wbxml: 'application/vnd.syncml.dm+wbxml',
  notification: 'application/vnd.syncml.notification',
} as const

/** `omadm/v1/<encodeURIComponent(LocURI)>/<channel>`: the topic of the party the message is for. */
export function topicFor(locUri: string, channel: PeerChannel, prefix = DEFAULT_PREFIX): string {
  return `${prefix}/${encodeURIComponent(locUri)}/${channel}`
}

export interface ConnectOptions {
  clientId?: string
  /**
   * The identity (a LocURI, or a bootstrap server's name) the peer connects as: its user name is
   * `encodeURIComponent(as)`, the convention of the least-privilege broker ACL (targets/mosquitto), unless
   * `username` says otherwise.
   */
  as?: string
  username?: string
  password?: string
}

/** The MQTT user name of an identity under the project's broker ACL: its topic level. */
export function usernameOf(identity: string): string {
  return encodeURIComponent(identity)
}

/** An MQTT 5 client, connected; Nagle is turned off since every exchange is a small request and answer. */
export async function connectPeer(brokerUrl: string, options: ConnectOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(brokerUrl, {
    protocolVersion: 5,
    clientId: options.clientId ?? `peer-${Math.random().toString(16).slice(2, 10)}`,
    username: options.username ?? (options.as === undefined ? undefined : usernameOf(options.as)),
    password: options.password,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
  })
  client.on('connect', () => {
    const stream = client.stream as { setNoDelay?: (on: boolean) => void }
    stream.setNoDelay?.(true)
  })
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      client.end(true)
      reject(err)
    }
    client.once('connect', () => {
      client.off('error', onError)
      resolve()
    })
    client.once('error', onError)
  })
  return client
}

export interface PublishOptions {
  contentType?: string
  userProperties?: Record<string, string>
  retain?: boolean
}

/** QoS 1 publish that resolves once the broker has it (PUBACK). */
export function publish(client: MqttClient, topic: string, payload: string | Uint8Array, options: PublishOptions = {}): Promise<void> {
  const properties: { contentType?: string; userProperties?: Record<string, string> } = {}
  if (options.contentType) properties.contentType = options.contentType
  if (options.userProperties && Object.keys(options.userProperties).length) properties.userProperties = options.userProperties
  const body = typeof payload === 'string' ? payload : Buffer.from(payload)
  return new Promise((resolve, reject) => {
    client.publish(topic, body, { qos: 1, retain: options.retain ?? false, properties }, (err) => (err ? reject(err) : resolve()))
  })
}

export function subscribe(client: MqttClient, topic: string): Promise<void> {
  return new Promise((resolve, reject) => {
    client.subscribe(topic, { qos: 1 }, (err) => (err ? reject(err) : resolve()))
  })
}

export function disconnect(client: MqttClient): Promise<void> {
  return new Promise((resolve) => client.end(false, {}, () => resolve()))
}

/** User properties as one string per key (MQTT.js gives an array when a key repeats: the first one counts). */
export function userProperties(props: Record<string, string | string[]> | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(props ?? {})) out[k] = Array.isArray(v) ? (v[0] ?? '') : v
  return out
}
