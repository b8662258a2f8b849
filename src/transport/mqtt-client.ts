/**
 * One MQTT 5 connection to one broker, built on MQTT.js's `MqttClient` class alone. The package's full entry
 * (`mqtt.connect`) would pull its WebSocket, SOCKS and browser stream builders into the bundle; the agent only
 * speaks `mqtt://` and `mqtts://`, so it brings its own stream builder on `node:net` / `node:tls`.
 */
import { connect as netConnect, isIP } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import * as clientModule from 'mqtt/lib/client'
import type { IClientOptions } from 'mqtt/lib/client'
import type { Logger } from '../log.ts'
import { createBackoff, type BackoffOptions } from '../backoff.ts'
import { TRANSPORT_TIMINGS } from './backoff.ts'

type MqttClientClass = typeof clientModule.default
export type MqttClient = InstanceType<MqttClientClass>

// Node's ESM loader hands over a CommonJS module's whole `exports` as its default; esbuild and Bun follow
// `__esModule` and hand over `exports.default`. Accept both, so tests (Node) and the bundle load the same class.
const loaded = clientModule.default as MqttClientClass | { default: MqttClientClass }
const MqttClientConstructor: MqttClientClass = typeof loaded === 'function' ? loaded : loaded.default

/** PEM material, as file contents (the runtime reads the files; the transport does no file I/O). */
export interface TlsMaterial {
  ca?: string | Buffer
  cert?: string | Buffer
  key?: string | Buffer
}

export interface ConnectionOptions {
  /** `mqtt://host[:port]` or `mqtts://host[:port]`. */
  url: string
  username?: string
  password?: string
  tls?: TlsMaterial
  clientId: string
  keepaliveSeconds: number
  /** MQTT 5 Maximum Packet Size announced in CONNECT, so a compliant broker never sends anything larger. */
  maxPacketSize?: number
  will?: { topic: string; payload: string; retain: boolean }
  reconnect: BackoffOptions
  /** Opening to CONNACK, at most; `TRANSPORT_TIMINGS.connectTimeoutMs` unless given. */
  connectTimeoutMs?: number
  logger: Logger
}

interface Endpoint {
  secure: boolean
  host: string
  port: number
}

function endpointOf(url: string): Endpoint {
  const parsed = new URL(url)
  const secure = parsed.protocol === 'mqtts:'
  // WHATWG URL keeps the brackets of an IPv6 literal; sockets want the bare address.
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1')
  return { secure, host, port: parsed.port ? Number(parsed.port) : secure ? 8883 : 1883 }
}

/**
 * TCP_NODELAY on every socket: without it each small SyncML reply waits for the peer's delayed ACK (~40 ms)
 * before it leaves.
 */
function streamBuilder(endpoint: Endpoint, tls: TlsMaterial | undefined) {
  return () => {
    if (!endpoint.secure) return netConnect({ host: endpoint.host, port: endpoint.port }).setNoDelay(true)
    return tlsConnect({
      host: endpoint.host,
      port: endpoint.port,
      // RFC 6066, 3: SNI carries host names only, never address literals.
      ...(isIP(endpoint.host) === 0 && { servername: endpoint.host }),
      // Node takes an unset ca, cert or key as not given (the system's CAs, no client certificate).
      ...tls,
      rejectUnauthorized: true,
    }).setNoDelay(true)
  }
}

/**
 * Creates the client and starts connecting (the socket opens now; the caller adds its listeners in the same
 * tick, before any of its events can fire). Reconnection stays MQTT.js's (its queued publishes and their
 * callbacks survive a lost connection that way), but the delay before each attempt is ours: exponential
 * with full jitter, set just before MQTT.js arms its timer on `close`. `connected()` must be called once
 * the connection is fully usable (subscriptions granted), which resets the backoff.
 */
export function openConnection(options: ConnectionOptions): { client: MqttClient; connected(): void } {
  const backoff = createBackoff(options.reconnect)
  const clientOptions: IClientOptions = {
    protocolVersion: 5,
    protocolId: 'MQTT',
    clientId: options.clientId,
    // A clean start every time; see bindings/mqtt.ts for why the agent does not keep a broker session.
    clean: true,
    resubscribe: false,
    keepalive: options.keepaliveSeconds,
    connectTimeout: options.connectTimeoutMs ?? TRANSPORT_TIMINGS.connectTimeoutMs,
    reconnectPeriod: backoff.next(),
    // A refused CONNECT (say, credentials not provisioned yet) is retried with the same backoff.
    reconnectOnConnackError: true,
    queueQoSZero: false,
    // Not `manualConnect`: with it, MQTT.js forgets on `end()` that it is shutting down, and a socket that
    // closes after that arms a reconnection of a stopped client.
    log: () => {},
    // MQTT.js writes a user name and a password only when they are set.
    username: options.username,
    password: options.password,
    ...(options.maxPacketSize !== undefined && { properties: { maximumPacketSize: options.maxPacketSize } }),
    ...(options.will && { will: { ...options.will, qos: 1 as const } }),
  }
  const client = new MqttClientConstructor(streamBuilder(endpointOf(options.url), options.tls), clientOptions)
  // MQTT.js reads `reconnectPeriod` when the stream closes; its own `close` listener runs right after this one.
  client.prependListener('close', () => {
    client.options.reconnectPeriod = backoff.next()
  })
  client.on('error', (error) => {
    options.logger.warn('mqtt connection error', { error: error.message, code: (error as { code?: unknown }).code })
  })
  return { client, connected: () => backoff.reset() }
}
