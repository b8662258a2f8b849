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
import { close, type Connection, type Timers } from './connection.ts'
import type { MqttClient } from './mqtt-client.ts'

export interface Credentials {
  username?: string
  password?: string
}

export interface PartyBrokersOptions {
  /** The agent's own ClientId, which each connection's is made from. */
  clientId: string
  max: number
  idleMs: number
  stopTimeoutMs: number
  timers: Timers
  log: Logger
  open(origin: string, credentials: Credentials, clientId: string): MqttClient
}

interface PartyConnection extends Connection {
  readonly inFlight: Set<(error: Error) => void>
  key: string
  origin: string
  clientId: string
  /** The timer that closes it once idle, set again by every send. */
  idle: unknown
}

/** The user name and password of an AppAddr (`mqtt://user:password@host`), percent-decoded; undefined if malformed. */
export function credentialsOf(address: string): Credentials | undefined {
  try {
    const url = new URL(address)
    return {
      ...(url.username !== '' && { username: decodeURIComponent(url.username) }),
      ...(url.password !== '' && { password: decodeURIComponent(url.password) }),
    }
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

export class PartyBrokers {
  /** Least recently used first. */
  private readonly pool = new Map<string, PartyConnection>()

  constructor(private readonly options: PartyBrokersOptions) {}

  /** The connection for a message to the broker at `origin`, opened if need be; the send that asks keeps it open. */
  connectionFor(origin: string, credentials: Credentials, message: OutboundMessage): Connection {
    const { pool, options } = this
    const clientId = partyClientId(options.clientId, message)
    // Per account, broker and user name, so two parties on one broker with different credentials stay apart.
    const key = JSON.stringify([clientId, origin, credentials.username ?? null])
    let connection = pool.get(key)
    if (connection) pool.delete(key)
    else {
      // The account's earlier broker or credentials (its AppAddr changed): one connection per ClientId, always.
      for (const other of [...pool.values()]) if (other.clientId === clientId) this.retire(other, 'closing the account\'s previous broker connection')
      while (pool.size >= options.max) this.retire(pool.values().next().value as PartyConnection, 'closing least recently used broker connection')
      connection = { client: options.open(origin, credentials, clientId), inFlight: new Set(), key, origin, clientId, idle: undefined }
      options.log.info('opened connection to a party broker', { broker: origin, clientId })
    }
    pool.set(key, connection)
    this.armIdle(connection)
    return connection
  }

  /** Empties the pool and hands its connections over, for the binding to close with its own. */
  drain(): Connection[] {
    const connections = [...this.pool.values()]
    for (const connection of connections) this.options.timers.clearTimeout(connection.idle)
    this.pool.clear()
    return connections
  }

  private retire(connection: PartyConnection, why: string): void {
    const { timers, log, stopTimeoutMs } = this.options
    timers.clearTimeout(connection.idle)
    this.pool.delete(connection.key)
    log.info(why, { broker: connection.origin, clientId: connection.clientId })
    void close(connection, stopTimeoutMs, timers)
  }

  private armIdle(connection: PartyConnection): void {
    const { timers } = this.options
    timers.clearTimeout(connection.idle)
    connection.idle = timers.setTimeout(() => {
      if (this.pool.get(connection.key) === connection) this.retire(connection, 'closing idle broker connection')
    }, this.options.idleMs)
  }
}
