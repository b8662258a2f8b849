/**
 * Connections to the brokers that parties' AppAddr name (binding.md §2, §6): one per account, broker and user
 * name, at most `max` at once. The least recently used is closed to make room, and one that no send has used for
 * `idleMs` is closed on its own: the device hears its parties on its own broker, so such a connection only
 * carries its own messages out. A send still unacknowledged when its connection closes is rejected: its session
 * gave up long before.
 */
import { createHash } from 'node:crypto'
import type { Logger } from '../log.ts'
import type { OutboundMessage } from '../session/port.ts'
import { TRANSPORT_TIMINGS } from './backoff.ts'
import { close, type Connection, type Timers } from './connection.ts'
import type { MqttClient } from './mqtt-client.ts'

export interface Credentials {
  username?: string
  password?: string
}

/** The settings of the agent's MQTT binding that the pool reads. */
export interface PartyBrokerSettings {
  /** The agent's own ClientId, which each connection's is made from. */
  clientId: string
  /** How many stay connected at once. */
  maxExtraBrokers?: number
  /** How long one stays open without a send (`TRANSPORT_TIMINGS`). */
  partyBrokerIdleMs?: number
}

/** Opens a connection to a broker with the account's own credentials and ClientId. */
export type OpenBroker = (origin: string, credentials: Credentials, clientId: string) => MqttClient

interface PartyConnection extends Connection {
  key: string
  origin: string
  clientId: string
  /** The timer that closes it once idle, set again by every send. */
  idle: unknown
}

/** The user name and password of an AppAddr (`mqtt://user:password@host`), percent-decoded; undefined if malformed. */
export function credentialsOf(address: string): Credentials | undefined {
  try {
    const { username, password } = new URL(address)
    return { username: username ? decodeURIComponent(username) : undefined, password: password ? decodeURIComponent(password) : undefined }
  } catch {
    return undefined
  }
}

/**
 * binding.md §6: every connection has its own ClientId, so that one to an AppAddr broker that is in fact the
 * device's own (`localhost` for `127.0.0.1`) never takes the main session over. Named after the account; a
 * message that does not name it is named after its party (a short hash of the LocURI, stable and free of the
 * characters some brokers refuse).
 */
function partyClientId(clientId: string, message: OutboundMessage): string {
  const name = message.account ?? createHash('sha256').update(message.to).digest('hex').slice(0, 12)
  return `${clientId}/${name}`
}

export interface PartyBrokers {
  /** The connection for a message to the broker at `origin`, opened if need be; the send that asks keeps it open. */
  connectionFor(origin: string, credentials: Credentials, message: OutboundMessage): Connection
  /** Empties the pool and hands its connections over, for the binding to close with its own. */
  drain(): Connection[]
}

const DEFAULT_MAX_EXTRA_BROKERS = 4

export function partyBrokers(settings: PartyBrokerSettings, timers: Timers, log: Logger, open: OpenBroker): PartyBrokers {
  const max = settings.maxExtraBrokers ?? DEFAULT_MAX_EXTRA_BROKERS
  /** Least recently used first. */
  const pool = new Map<string, PartyConnection>()

  const retire = (connection: PartyConnection, why: string) => {
    timers.clearTimeout(connection.idle)
    pool.delete(connection.key)
    log.info(why, { broker: connection.origin, clientId: connection.clientId })
    void close(connection, TRANSPORT_TIMINGS.stopTimeoutMs, timers)
  }

  return {
    connectionFor(origin, credentials, message) {
      const clientId = partyClientId(settings.clientId, message)
      // Per account, broker and user name, so two parties on one broker with different credentials stay apart.
      const key = JSON.stringify([clientId, origin, credentials.username ?? null])
      let connection = pool.get(key)
      if (connection) pool.delete(key)
      else {
        // The account's earlier broker or credentials (its AppAddr changed): one connection per ClientId, always.
        for (const other of [...pool.values()]) if (other.clientId === clientId) retire(other, 'closing the account\'s previous broker connection')
        while (pool.size >= max) retire(pool.values().next().value as PartyConnection, 'closing least recently used broker connection')
        connection = { client: open(origin, credentials, clientId), inFlight: new Set(), key, origin, clientId, idle: undefined }
        log.info('opened connection to a party broker', { broker: origin, clientId })
      }
      pool.set(key, connection)
      const used = connection
      timers.clearTimeout(used.idle)
      used.idle = timers.setTimeout(() => {
        if (pool.get(used.key) === used) retire(used, 'closing idle broker connection')
      }, settings.partyBrokerIdleMs ?? TRANSPORT_TIMINGS.partyBrokerIdleMs)
      return used
    },

    drain() {
      const connections = [...pool.values()]
      for (const connection of connections) timers.clearTimeout(connection.idle)
      pool.clear()
      return connections
    },
  }
}
