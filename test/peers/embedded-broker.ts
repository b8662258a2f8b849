/**
 * A small MQTT 5 broker inside the demo's own process, so that `npm run demo` needs no broker installed. It keeps
 * to what the agent and the peers use: clean sessions, QoS 0 and 1, retained messages, wills, `+`/`#` filters,
 * and every MQTT 5 property of a PUBLISH passed on unchanged (binding.md §2 carries the content type and the
 * `SEC`/`MAC`/`x-syncml-hmac` user properties there). Written on mqtt-packet, the codec under MQTT.js; aedes 1.x
 * refuses MQTT 5 clients (CONNACK "unacceptable protocol version").
 *
 * Not a production broker: no authentication, no persistence, no QoS 2 (CONNACK says Maximum QoS 1), no
 * redelivery of unacknowledged QoS 1 messages (a local TCP connection either delivers or closes).
 */
import { createServer, type AddressInfo, type Socket } from 'node:net'
import mqttPacket, { type IConnectPacket, type IPublishPacket, type ISubscribePacket, type Packet } from 'mqtt-packet'

const V5 = { protocolVersion: 5 }

/** MQTT 5 reason codes used here (MQTT 5.0, 2.4). */
const REASON = {
  success: 0x00,
  noSubscriptionExisted: 0x11,
  unsupportedProtocolVersion: 0x84,
  sessionTakenOver: 0x8e,
  keepAliveTimeout: 0x8d,
  qosNotSupported: 0x9b,
  disconnectWithWill: 0x04,
} as const

interface Subscription {
  qos: 0 | 1
  noLocal: boolean
  retainAsPublished: boolean
}

interface Connection {
  socket: Socket
  clientId: string
  will?: IPublishPacket
  maxPacketSize: number
  subscriptions: Map<string, Subscription>
  nextMessageId: number
  keepaliveTimer?: ReturnType<typeof setTimeout>
  keepaliveMs: number
}

export interface EmbeddedBroker {
  /** `mqtt://127.0.0.1:<port>`. */
  url: string
  port: number
  /** Disconnects every client (no wills) and stops listening. */
  close(): Promise<void>
}

/** MQTT 5.0, 4.7: `+` matches one level, `#` the rest; a `$` topic is not matched by a leading wildcard. */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}

export interface EmbeddedBrokerOptions {
  /** Sees every packet a client sends, in the order the broker handles them (tests of packet order). */
  onPacket?: (clientId: string | undefined, packet: Packet) => void
  /** Holds a client's SUBACK until the promise settles (tests of what a client does while it waits). */
  beforeSuback?: (clientId: string) => Promise<void>
}

/** Starts listening on a free port of 127.0.0.1. */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  const connections = new Map<string, Connection>()
  const retained = new Map<string, IPublishPacket>()
  const sockets = new Set<Socket>()
  let closing = false

  const write = (socket: Socket, packet: Packet): void => {
    if (!socket.destroyed) socket.write(mqttPacket.generate(packet, V5))
  }

  const deliver = (conn: Connection, message: IPublishPacket, qos: 0 | 1, retain: boolean): void => {
    const { topicAlias: _alias, subscriptionIdentifier: _id, ...properties } = message.properties ?? {}
    const out: IPublishPacket = { cmd: 'publish', topic: message.topic, payload: message.payload, qos, retain, dup: false, properties }
    if (qos > 0) {
      out.messageId = conn.nextMessageId
      conn.nextMessageId = (conn.nextMessageId % 0xffff) + 1
    }
    const bytes = mqttPacket.generate(out, V5)
    // MQTT 5.0, 3.1.2.11.4: a packet larger than the client's Maximum Packet Size is not sent to it.
    if (bytes.length > conn.maxPacketSize || conn.socket.destroyed) return
    conn.socket.write(bytes)
  }

  const route = (message: IPublishPacket, from: Connection | undefined): void => {
    if (message.retain) {
      const empty = typeof message.payload === 'string' ? message.payload === '' : message.payload.length === 0
      if (empty) retained.delete(message.topic)
      else retained.set(message.topic, { ...message, retain: true })
    }
    for (const conn of connections.values()) {
      let best: Subscription | undefined
      for (const [filter, sub] of conn.subscriptions) {
        if (!topicMatches(filter, message.topic) || (sub.noLocal && conn === from)) continue
        if (best === undefined || sub.qos > best.qos) best = sub
      }
      if (best === undefined) continue
      deliver(conn, message, Math.min(best.qos, message.qos) as 0 | 1, best.retainAsPublished && message.retain)
    }
  }

  const drop = (conn: Connection, publishWill: boolean): void => {
    if (conn.keepaliveTimer) clearTimeout(conn.keepaliveTimer)
    if (connections.get(conn.clientId) === conn) connections.delete(conn.clientId)
    const will = conn.will
    conn.will = undefined
    if (publishWill && will && !closing) route(will, conn)
    conn.socket.destroy()
  }

  const touch = (conn: Connection): void => {
    if (conn.keepaliveMs === 0) return
    if (conn.keepaliveTimer) clearTimeout(conn.keepaliveTimer)
    conn.keepaliveTimer = setTimeout(() => {
      write(conn.socket, { cmd: 'disconnect', reasonCode: REASON.keepAliveTimeout })
      drop(conn, true)
    }, conn.keepaliveMs)
  }

  const connect = (socket: Socket, packet: IConnectPacket): Connection | undefined => {
    if (packet.protocolVersion !== 5) {
      write(socket, { cmd: 'connack', sessionPresent: false, reasonCode: REASON.unsupportedProtocolVersion })
      socket.end()
      return undefined
    }
    const assigned = packet.clientId === '' ? `embedded-${Math.random().toString(16).slice(2, 10)}` : undefined
    const clientId = assigned ?? packet.clientId
    const previous = connections.get(clientId)
    if (previous) {
      write(previous.socket, { cmd: 'disconnect', reasonCode: REASON.sessionTakenOver })
      drop(previous, true)
    }
    const conn: Connection = {
      socket,
      clientId,
      maxPacketSize: packet.properties?.maximumPacketSize ?? Infinity,
      subscriptions: new Map(),
      nextMessageId: 1,
      // MQTT 5.0, 3.1.2.10: one and a half times the keep alive without a packet closes the connection.
      keepaliveMs: (packet.keepalive ?? 0) * 1500,
    }
    if (packet.will) {
      const { topic, payload, qos = 0, retain = false, properties } = packet.will
      conn.will = { cmd: 'publish', topic, payload, qos: Math.min(qos, 1) as 0 | 1, retain, dup: false, ...(properties && { properties }) }
    }
    connections.set(clientId, conn)
    write(socket, {
      cmd: 'connack',
      sessionPresent: false,
      reasonCode: REASON.success,
      properties: { maximumQoS: 1, ...(assigned && { assignedClientIdentifier: assigned }) },
    })
    touch(conn)
    return conn
  }

  const subscribe = (conn: Connection, packet: ISubscribePacket): void => {
    const granted: number[] = []
    for (const s of packet.subscriptions) {
      const qos = Math.min(s.qos, 1) as 0 | 1
      const isNew = !conn.subscriptions.has(s.topic)
      conn.subscriptions.set(s.topic, { qos, noLocal: Boolean(s.nl), retainAsPublished: Boolean(s.rap) })
      granted.push(qos)
      // MQTT 5.0, 3.3.1.3: Retain Handling 0 sends the retained messages, 1 only for a new subscription, 2 never.
      const handling = s.rh ?? 0
      if (handling === 2 || (handling === 1 && !isNew)) continue
      for (const message of retained.values()) {
        if (topicMatches(s.topic, message.topic)) deliver(conn, message, Math.min(qos, message.qos) as 0 | 1, true)
      }
    }
    const suback = () => write(conn.socket, { cmd: 'suback', messageId: packet.messageId ?? 0, granted })
    if (options.beforeSuback === undefined) suback()
    else void options.beforeSuback(conn.clientId).then(suback, suback)
  }

  const onPacket = (socket: Socket, conn: Connection | undefined, packet: Packet): Connection | undefined => {
    if (conn === undefined) {
      if (packet.cmd === 'connect') return connect(socket, packet)
      socket.destroy()
      return undefined
    }
    touch(conn)
    switch (packet.cmd) {
      case 'publish':
        if (packet.qos === 2) {
          write(socket, { cmd: 'disconnect', reasonCode: REASON.qosNotSupported })
          drop(conn, true)
          break
        }
        if (packet.qos === 1) write(socket, { cmd: 'puback', messageId: packet.messageId ?? 0, reasonCode: REASON.success })
        route(packet, conn)
        break
      case 'subscribe':
        subscribe(conn, packet)
        break
      case 'unsubscribe': {
        const granted = packet.unsubscriptions.map((t) => (conn.subscriptions.delete(t) ? REASON.success : REASON.noSubscriptionExisted))
        write(socket, { cmd: 'unsuback', messageId: packet.messageId ?? 0, granted })
        break
      }
      case 'pingreq':
        write(socket, { cmd: 'pingresp' })
        break
      case 'disconnect':
        // MQTT 5.0, 3.14.4: a normal disconnection discards the will; reason 0x04 asks for it to be sent.
        drop(conn, packet.reasonCode === REASON.disconnectWithWill)
        break
      default:
        // PUBACK for what we delivered needs no action (no redelivery); anything else is not expected here.
        break
    }
    return conn
  }

  const server = createServer((socket) => {
    sockets.add(socket)
    socket.setNoDelay(true)
    const parser = mqttPacket.parser(V5)
    let conn: Connection | undefined
    parser.on('packet', (packet: Packet) => {
      options.onPacket?.(packet.cmd === 'connect' ? packet.clientId : conn?.clientId, packet)
      conn = onPacket(socket, conn, packet)
    })
    parser.on('error', () => {
      if (conn) drop(conn, true)
      else socket.destroy()
    })
    socket.on('data', (chunk: Buffer) => parser.parse(chunk))
    socket.on('error', () => undefined)
    socket.on('close', () => {
      sockets.delete(socket)
      if (conn) drop(conn, true)
    })
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    async close() {
      closing = true
      for (const conn of connections.values()) drop(conn, false)
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
