/**
 * Topic names of the MQTT binding (binding.md §2): `<prefix>/<U>/<channel>`, where `<U>` is
 * `encodeURIComponent` of the LocURI of the party the message is for, so `/`, `+` and `#` never reach a level.
 */
import type { Channel } from '../session/port.ts'

export const INBOUND_CHANNELS: readonly Channel[] = ['dm', 'notification', 'bootstrap']

/** The retained `online` / `offline` topic of a party (binding.md §2, the agent's will). */
export const STATUS_CHANNEL = 'status'

export type TopicChannel = Channel | typeof STATUS_CHANNEL

export function topicFor(prefix: string, locUri: string, channel: TopicChannel): string {
  return `${prefix}/${encodeURIComponent(locUri)}/${channel}`
}

/** The topics the device subscribes to: its own inbound channels. */
export function deviceTopics(prefix: string, deviceId: string): string[] {
  return INBOUND_CHANNELS.map((channel) => topicFor(prefix, deviceId, channel))
}

/**
 * The channel of an inbound topic, or undefined when the topic is not one of the device's own inbound
 * topics (the caller drops and logs it).
 */
export function parseTopic(prefix: string, deviceId: string, topic: string): Channel | undefined {
  const own = `${prefix}/${encodeURIComponent(deviceId)}/`
  if (!topic.startsWith(own)) return undefined
  const channel = topic.slice(own.length)
  return (INBOUND_CHANNELS as readonly string[]).includes(channel) ? (channel as Channel) : undefined
}

/** Where an outbound message goes: a broker (by origin, `mqtt://host:port`) and a topic on it. */
export interface Route {
  /** `mqtt://host:port` or `mqtts://host:port`, the port always written out. */
  origin: string
  topic: string
}

const DEFAULT_PORTS: Record<string, string> = { 'mqtt:': '1883', 'mqtts:': '8883' }

/**
 * `mqtt://host:port` of a broker URL: the host in lower case and without a trailing dot (`Broker.Example.` is
 * `broker.example`), the default port written out; undefined unless `mqtt:` or `mqtts:`. Two URLs with the same
 * origin name the same broker; the converse needs DNS (`localhost` and `127.0.0.1`), which this does not ask.
 */
export function brokerOrigin(url: string): string | undefined {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return undefined
  }
  const port = DEFAULT_PORTS[parsed.protocol]
  if (port === undefined) return undefined
  const host = parsed.hostname.toLowerCase().replace(/\.$/, '')
  if (host === '') return undefined
  return `${parsed.protocol}//${host}:${parsed.port || port}`
}

/** MQTT 5, 4.7.3: a topic name is non-empty and holds no wildcard (and no U+0000, 1.5.4). */
export function isValidTopicName(topic: string): boolean {
  return topic !== '' && !/[+#\u0000]/.test(topic)
}

export type RouteResult = { ok: true; route: Route } | { ok: false; reason: string }

/**
 * binding.md §2: a party with an `mqtt://` / `mqtts://` AppAddr is reached on that broker, with the URL's path as
 * the topic; otherwise (or when the path is empty) on the default topic. The path is taken as written, still
 * percent-encoded, so an AppAddr that spells out the default topic (`.../omadm/v1/http%3A%2F%2Fdms/dm`) names
 * exactly that topic.
 */
export function routeFor(options: { prefix: string; mainOrigin: string; to: string; address?: string }): RouteResult {
  const defaultTopic = topicFor(options.prefix, options.to, 'dm')
  // No address names no broker, like one that is not an mqtt:// or mqtts:// URL.
  const address = options.address ?? ''
  const origin = brokerOrigin(address)
  if (origin === undefined) return { ok: true, route: { origin: options.mainOrigin, topic: defaultTopic } }
  const url = new URL(address)
  if (url.search !== '' || url.hash !== '') return { ok: false, reason: 'address has a query or fragment' }
  const path = url.pathname.replace(/^\//, '')
  const topic = path === '' ? defaultTopic : path
  if (!isValidTopicName(topic)) return { ok: false, reason: 'address path is not a valid topic name' }
  return { ok: true, route: { origin, topic } }
}

