/**
 * The MQTT binding against a real broker (Debian's mosquitto), with parties played by plain MQTT.js clients.
 * The device's broker runs the project's least-privilege ACL (binding.md §6) for the devices this file starts
 * and their DM Server; the brokers that parties' AppAddr name are theirs, and open here.
 */
import t, { type Test } from 'tap'
import { connect as netConnect, createServer, type Socket } from 'node:net'
import mqtt from 'mqtt'
import type { IPublishPacket, MqttClient as PeerClient } from 'mqtt'
import { createLogger } from '../src/log.ts'
import { createMqttTransport, type MqttTransportOptions } from '../src/transport/bindings/mqtt.ts'
import type { InboundMessage, Transport } from '../src/session/port.ts'
import { topicFor } from '../src/transport/topics.ts'
import { usernameFor, worldOf } from './helpers/broker-world.ts'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.ts'

const prefix = 'omadm/v1'
const XML = 'application/vnd.syncml.dm+xml'
const WBXML = 'application/vnd.syncml.dm+wbxml'
const server = 'http://www.someDMServer.com'
const deviceIdOf = (n: number) => `mac:01-ab-34-ef-69-${n.toString(16).padStart(2, '0')}`
let deviceCount = 0
const nextDeviceId = () => deviceIdOf(++deviceCount)
/** Each device this file starts, with the DM Server as its party on every channel and on one topic of its own. */
const WORLD = worldOf(Array.from({ length: 48 }, (_, k) => deviceIdOf(k + 1)), [
  { id: server, role: 'server', channels: ['dm', 'notification', 'bootstrap'] },
  { id: server, role: 'server', topic: 'here/too' },
])
/** The device's user name, written into an AppAddr. */
const userInfo = (deviceId: string) => encodeURIComponent(usernameFor(deviceId))

/** Events of one kind, in order, each handed to exactly one `next()`. */
function queue<T>() {
  const items: T[] = []
  const waiting: Array<(item: T) => void> = []
  return {
    push(item: T) {
      const waiter = waiting.shift()
      if (waiter) waiter(item)
      else items.push(item)
    },
    next(): Promise<T> {
      const item = items.shift()
      return item !== undefined ? Promise.resolve(item) : new Promise((resolve) => waiting.push(resolve))
    },
    get size() {
      return items.length
    },
  }
}

interface Device {
  deviceId: string
  transport: Transport
  messages: ReturnType<typeof queue<InboundMessage>>
  online: ReturnType<typeof queue<true>>
  offline: ReturnType<typeof queue<true>>
  logs: Array<Record<string, unknown>>
  statusTopic: string
  dmTopic: string
}

async function startDevice(t: Test, url: string, options: Partial<MqttTransportOptions> = {}): Promise<Device> {
  const deviceId = options.deviceId ?? nextDeviceId()
  const logs: Array<Record<string, unknown>> = []
  const logger = createLogger({ level: 'debug', write: (line) => logs.push(JSON.parse(line)) })
  const transport = createMqttTransport({
    url,
    username: usernameFor(deviceId),
    clientId: `gwmo-${deviceId}`,
    keepaliveSeconds: 30,
    prefix,
    deviceId,
    maxPacketSize: 65536,
    logger,
    reconnect: { baseMs: 100, capMs: 400 },
    ...options,
  })
  const device: Device = {
    deviceId,
    transport,
    messages: queue(),
    online: queue(),
    offline: queue(),
    logs,
    statusTopic: topicFor(prefix, deviceId, 'status'),
    dmTopic: topicFor(prefix, deviceId, 'dm'),
  }
  await transport.start({
    message: (message) => device.messages.push(message),
    online: () => device.online.push(true),
    offline: () => device.offline.push(true),
  })
  t.teardown(() => transport.stop())
  return device
}

type Received = { topic: string; payload: Buffer; packet: IPublishPacket }

/** A client in the DM Server's place (its user name), unless `options` say otherwise. */
async function startPeer(t: Test, url: string, options: mqtt.IClientOptions = {}) {
  const client: PeerClient = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 50, username: usernameFor(server), ...options })
  const received = queue<Received>()
  client.on('message', (topic, payload, packet) => received.push({ topic, payload, packet }))
  client.on('error', () => {})
  t.teardown(() => client.endAsync(true))
  await new Promise((resolve) => client.once('connect', resolve))
  return { client, received }
}

/** What a new subscriber finds retained on `topic` (`undefined` when nothing is). */
async function retained(t: Test, url: string, topic: string): Promise<string | undefined> {
  const { client, received } = await startPeer(t, url)
  await client.subscribeAsync(topic, { qos: 1 })
  // A marker published after the subscription arrives after any retained message (the server's own status topic:
  // the ACL lets it publish there and read it).
  const marker = topicFor(prefix, server, 'status')
  await client.subscribeAsync(marker, { qos: 1 })
  await client.publishAsync(marker, 'end', { qos: 1 })
  const first = await received.next()
  await client.endAsync(true)
  return first.topic === topic ? first.payload.toString() : undefined
}

/** A TCP relay in front of the broker whose connections can be cut without a word, as a dying host would. */
async function relay(t: Test, brokerPort: number) {
  const sockets = new Set<Socket>()
  const pairs: Array<[Socket, Socket]> = []
  const proxy = createServer((inbound) => {
    const outbound = netConnect({ host: '127.0.0.1', port: brokerPort })
    pairs.push([inbound, outbound])
    for (const socket of [inbound, outbound]) {
      sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => {
        sockets.delete(socket)
        inbound.destroy()
        outbound.destroy()
      })
    }
    inbound.pipe(outbound).pipe(inbound)
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  const address = proxy.address()
  const port = typeof address === 'object' && address ? address.port : 0
  t.teardown(() => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy()
    proxy.close(() => resolve())
  }))
  return {
    url: `mqtt://127.0.0.1:${port}`,
    cut: () => sockets.forEach((socket) => socket.destroy()),
    /** A broker that hangs: the connections stay open, and nothing passes either way any more. */
    freeze: () => {
      for (const [inbound, outbound] of pairs) {
        inbound.unpipe(outbound)
        outbound.unpipe(inbound)
        inbound.pause()
        outbound.pause()
      }
    },
  }
}

/** The device's broker, under the ACL of `WORLD`. */
async function broker(t: Test, options: Parameters<typeof startMosquitto>[0] = {}): Promise<Mosquitto> {
  const started = await startMosquitto({ world: WORLD, ...options })
  t.teardown(() => started.stop())
  return started
}

/** A broker that a party's AppAddr names: its own, whatever its rules; open here. */
function partyBroker(t: Test): Promise<Mosquitto> {
  return broker(t, { open: true, world: undefined })
}

t.test('a party\'s messages reach the device with channel, payload, content type and properties', async (t) => {
  const mosquitto = await broker(t)
  const device = await startDevice(t, mosquitto.url)
  await device.online.next()
  t.equal(await retained(t, mosquitto.url, device.statusTopic), 'online', 'retained online after start')

  const { client: peer } = await startPeer(t, mosquitto.url)
  const xml = '<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr/></SyncML>'
  await peer.publishAsync(device.dmTopic, xml, {
    qos: 1,
    properties: { contentType: XML, userProperties: { 'x-syncml-hmac': 'algorithm=MD5, username="dms", mac=Zm9v' } },
  })
  const dm = await device.messages.next()
  t.same(dm, {
    channel: 'dm',
    payload: Buffer.from(xml),
    contentType: XML,
    properties: { 'x-syncml-hmac': 'algorithm=MD5, username="dms", mac=Zm9v' },
  })

  const wbxml = Buffer.from([0x02, 0xa4, 0x01, 0x6a, 0x00, 0x6d])
  await peer.publishAsync(topicFor(prefix, device.deviceId, 'bootstrap'), wbxml, {
    qos: 1,
    properties: { contentType: WBXML, userProperties: { SEC: 'NETWORKID', MAC: 'ab'.repeat(20) } },
  })
  const bootstrap = await device.messages.next()
  t.equal(bootstrap.channel, 'bootstrap')
  t.same(Buffer.from(bootstrap.payload), wbxml)
  t.same(bootstrap.properties, { SEC: 'NETWORKID', MAC: 'ab'.repeat(20) })

  await peer.publishAsync(topicFor(prefix, device.deviceId, 'notification'), Buffer.from([1, 2, 3]), { qos: 1 })
  const notification = await device.messages.next()
  t.same({ channel: notification.channel, payload: Buffer.from(notification.payload), contentType: notification.contentType },
    { channel: 'notification', payload: Buffer.from([1, 2, 3]), contentType: undefined })
})

t.test('send publishes to the party\'s topic at QoS 1 with content type and user properties', async (t) => {
  const mosquitto = await broker(t)
  const device = await startDevice(t, mosquitto.url)
  const { client: peer, received } = await startPeer(t, mosquitto.url)
  const partyTopic = topicFor(prefix, server, 'dm')
  await peer.subscribeAsync(partyTopic, { qos: 1 })
  await device.online.next()

  const payload = new TextEncoder().encode('<SyncML>package 1</SyncML>')
  await device.transport.send({ to: server, payload, contentType: XML, properties: { 'x-syncml-hmac': 'mac=xyz' } })
  const got = await received.next()
  t.equal(got.topic, 'omadm/v1/http%3A%2F%2Fwww.someDMServer.com/dm')
  t.equal(got.payload.toString(), '<SyncML>package 1</SyncML>')
  t.equal(got.packet.qos, 1)
  t.equal(got.packet.properties?.contentType, XML)
  t.same(got.packet.properties?.userProperties, { 'x-syncml-hmac': 'mac=xyz' })

  // A view into a larger buffer sends only its own bytes.
  const backing = new TextEncoder().encode('xx<SyncML/>yy')
  await device.transport.send({ to: server, payload: backing.subarray(2, 11), contentType: XML })
  t.equal((await received.next()).payload.toString(), '<SyncML/>')
})

t.test('stop publishes a retained offline and settles; sending afterwards is refused', async (t) => {
  const mosquitto = await broker(t)
  const device = await startDevice(t, mosquitto.url, { password: 'pw-never-logged' })
  await device.online.next()
  const { client: watcher, received } = await startPeer(t, mosquitto.url)
  await watcher.subscribeAsync(device.statusTopic, { qos: 1 })
  t.equal((await received.next()).payload.toString(), 'online')

  await device.transport.stop()
  t.equal((await received.next()).payload.toString(), 'offline', 'watcher sees offline')
  t.equal(await retained(t, mosquitto.url, device.statusTopic), 'offline', 'and it stays retained')
  await device.offline.next()
  await t.rejects(device.transport.send({ to: server, payload: new Uint8Array(1), contentType: XML }), /transport is stopped/)
  await device.transport.stop()
  t.notMatch(JSON.stringify(device.logs), 'pw-never-logged', 'the password is never logged')
  await t.rejects(device.transport.start({ message() {}, online() {}, offline() {} }), /cannot start a transport that is stopped/)
})

t.test('an unclean loss of the connection makes the broker publish the will; the device comes back', async (t) => {
  const mosquitto = await broker(t)
  const path = await relay(t, mosquitto.port)
  const device = await startDevice(t, path.url)
  await device.online.next()
  const { client: watcher, received } = await startPeer(t, mosquitto.url)
  await watcher.subscribeAsync(device.statusTopic, { qos: 1 })
  t.equal((await received.next()).payload.toString(), 'online')

  path.cut()
  t.equal((await received.next()).payload.toString(), 'offline', 'the will, published by the broker')
  await device.offline.next()
  await device.online.next()
  t.equal((await received.next()).payload.toString(), 'online', 'online again after reconnecting')
})

t.test('stop settles even when the broker no longer answers', async (t) => {
  const mosquitto = await broker(t)
  const path = await relay(t, mosquitto.port)
  // The stop deadlines run on injected timers that expire at once.
  const device = await startDevice(t, path.url, { timers: { setTimeout: (callback) => setImmediate(callback), clearTimeout: () => {} } })
  await device.online.next()
  path.freeze()
  const pending = device.transport.send({ to: server, payload: Buffer.from('never acknowledged'), contentType: XML })
  await device.transport.stop()
  await t.rejects(pending, /connection closed/, 'the send in flight is rejected, not left hanging')
})

t.test('a send waiting for the broker is rejected when the transport stops', async (t) => {
  const mosquitto = await broker(t)
  const device = await startDevice(t, mosquitto.url)
  await device.online.next()
  mosquitto.kill()
  await device.offline.next()
  const pending = device.transport.send({ to: server, payload: Buffer.from('no broker'), contentType: XML })
  await device.transport.stop()
  await t.rejects(pending, /connection closed/)
})

t.test('a message larger than the announced maximum packet size never reaches the device', async (t) => {
  const mosquitto = await broker(t)
  const device = await startDevice(t, mosquitto.url, { maxPacketSize: 2048 })
  await device.online.next()
  const { client: peer } = await startPeer(t, mosquitto.url)
  await peer.publishAsync(device.dmTopic, Buffer.alloc(4000, 0x41), { qos: 1, properties: { contentType: XML } })
  await peer.publishAsync(device.dmTopic, 'after', { qos: 1, properties: { contentType: XML } })
  const first = await device.messages.next()
  t.equal(Buffer.from(first.payload).toString(), 'after', 'the large one was never delivered')
  t.equal(device.messages.size, 0)
})

t.test('after a broker restart the device resubscribes, republishes online, and messages flow both ways', async (t) => {
  const mosquitto = await broker(t)
  const device = await startDevice(t, mosquitto.url)
  await device.online.next()

  await mosquitto.restart()
  await device.offline.next()
  await device.online.next()
  // This broker keeps nothing across a restart, so a retained online now is a new one.
  t.equal(await retained(t, mosquitto.url, device.statusTopic), 'online')

  const { client: peer, received } = await startPeer(t, mosquitto.url)
  await peer.subscribeAsync(topicFor(prefix, server, 'dm'), { qos: 1 })
  await peer.publishAsync(device.dmTopic, 'inbound after restart', { qos: 1 })
  t.equal(Buffer.from((await device.messages.next()).payload).toString(), 'inbound after restart')
  await device.transport.send({ to: server, payload: Buffer.from('outbound after restart'), contentType: XML })
  t.equal((await received.next()).payload.toString(), 'outbound after restart')
})

t.test('a message sent while the broker is down is delivered once it is back', async (t) => {
  // Persistence keeps the party's session, so it is subscribed again the moment the broker is.
  const mosquitto = await broker(t, { persistence: true })
  const device = await startDevice(t, mosquitto.url)
  const { client: peer, received } = await startPeer(t, mosquitto.url, {
    clientId: 'dm-server-persistent',
    clean: false,
    properties: { sessionExpiryInterval: 300 },
  })
  await peer.subscribeAsync(topicFor(prefix, server, 'dm'), { qos: 1 })
  await device.online.next()

  let sent: Promise<void> | undefined
  await mosquitto.restart(async () => {
    await device.offline.next()
    sent = device.transport.send({ to: server, payload: Buffer.from('queued while down'), contentType: XML })
  })
  await device.online.next()
  await sent
  t.equal((await received.next()).payload.toString(), 'queued while down')
})

t.test('an mqtt:// AppAddr routes to that broker and that topic', async (t) => {
  const main = await broker(t)
  const other = await partyBroker(t)
  const device = await startDevice(t, main.url)
  const { client: otherPeer, received: onOther } = await startPeer(t, other.url)
  const { client: mainPeer, received: onMain } = await startPeer(t, main.url)
  await otherPeer.subscribeAsync(['site/7/dm', topicFor(prefix, server, 'dm')], { qos: 1 })
  await mainPeer.subscribeAsync('here/too', { qos: 1 })
  await device.online.next()

  await device.transport.send({ to: server, address: `${other.url}/site/7/dm`, payload: Buffer.from('one'), contentType: XML })
  let got = await onOther.next()
  t.same([got.topic, got.payload.toString(), got.packet.properties?.contentType], ['site/7/dm', 'one', XML])

  await device.transport.send({ to: server, address: other.url, payload: Buffer.from('two'), contentType: XML })
  got = await onOther.next()
  t.same([got.topic, got.payload.toString()], [topicFor(prefix, server, 'dm'), 'two'], 'no path: the default topic there')

  await device.transport.send({ to: server, address: `${main.url}/here/too`, payload: Buffer.from('three'), contentType: XML })
  got = await onMain.next()
  t.same([got.topic, got.payload.toString()], ['here/too', 'three'], 'the agent\'s own broker by another name')
  t.equal(device.logs.filter((line) => line.msg === 'opened connection to a party broker').length, 1,
    'one extra connection, reused, none for the agent\'s own broker')

  await t.rejects(device.transport.send({ to: server, address: `${other.url}/a/+/b`, payload: Buffer.from('x'), contentType: XML }),
    /address path is not a valid topic name/)
})

t.test('party brokers are pooled: the least recently used one is closed when the pool is full', async (t) => {
  const main = await broker(t)
  const first = await partyBroker(t)
  const second = await partyBroker(t)
  const device = await startDevice(t, main.url, { maxExtraBrokers: 1 })
  const peers = await Promise.all([first, second].map(async (b) => {
    const peer = await startPeer(t, b.url)
    await peer.client.subscribeAsync('party/dm', { qos: 1 })
    return peer
  }))
  await device.online.next()
  for (const [index, [target, account]] of ([[first, 'a'], [second, 'b'], [first, 'a']] as const).entries()) {
    await device.transport.send({ to: server, account, address: `${target.url}/party/dm`, payload: Buffer.from(`m${index}`), contentType: XML })
  }
  t.equal((await peers[0]!.received.next()).payload.toString(), 'm0')
  t.equal((await peers[1]!.received.next()).payload.toString(), 'm1')
  t.equal((await peers[0]!.received.next()).payload.toString(), 'm2')
  t.equal(device.logs.filter((line) => line.msg === 'closing least recently used broker connection').length, 2)
})

t.test('mqtts with the configured CA and client certificate', async (t) => {
  const mosquitto = await broker(t, { tls: { requireClientCertificate: true } })
  const tls = mosquitto.tls
  if (!tls) throw new Error('no TLS listener')
  const device = await startDevice(t, tls.url, { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey })
  await device.online.next()
  const { client: peer, received } = await startPeer(t, mosquitto.url)
  await peer.subscribeAsync(topicFor(prefix, server, 'dm'), { qos: 1 })
  await peer.publishAsync(device.dmTopic, 'over tls', { qos: 1 })
  t.equal(Buffer.from((await device.messages.next()).payload).toString(), 'over tls')
  await device.transport.send({ to: server, payload: Buffer.from('back over tls'), contentType: XML })
  t.equal((await received.next()).payload.toString(), 'back over tls')
  t.equal(await retained(t, mosquitto.url, device.statusTopic), 'online')

  // Without the test CA the broker's certificate is not trusted: the device never comes online.
  const untrusting = await startDevice(t, tls.url, { cert: tls.clientCert, key: tls.clientKey })
  while (!untrusting.logs.some((line) => line.msg === 'mqtt connection error')) await new Promise((r) => setImmediate(r))
  t.equal(untrusting.online.size, 0)
  t.equal(await retained(t, mosquitto.url, untrusting.statusTopic), undefined)
})

/** Resolves once the device has logged a line with `msg` beyond the first `from` lines; returns it. */
async function logged(device: Device, msg: string, from = 0): Promise<Record<string, unknown>> {
  for (;;) {
    const line = device.logs.slice(from).find((l) => l.msg === msg)
    if (line) return line
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** A watcher of the device's status; `seen()` returns every value published so far, the broker's will among them. */
async function statusWatch(t: Test, url: string, device: Device) {
  const { client, received } = await startPeer(t, url)
  const marker = topicFor(prefix, server, 'status')
  await client.subscribeAsync([device.statusTopic, marker], { qos: 1 })
  return {
    async seen(): Promise<string[]> {
      // Whatever the broker sent before the marker has arrived once the marker has.
      await client.publishAsync(marker, 'end', { qos: 1 })
      const values: string[] = []
      for (let got = await received.next(); got.topic !== marker; got = await received.next()) values.push(got.payload.toString())
      return values
    },
  }
}

const hex12 = /^[0-9a-f]{12}$/

// Regression (finding 9): an AppAddr naming the device's own broker by another name opened a second connection
// with the main ClientId; each took the other's session over, with a retained `offline` every time.
t.test('an AppAddr connection has a ClientId of its own: one naming the device\'s broker by another name takes nothing over', async (t) => {
  const mosquitto = await broker(t)
  const device = await startDevice(t, mosquitto.url)
  const status = await statusWatch(t, mosquitto.url, device)
  const { client: peer, received } = await startPeer(t, mosquitto.url)
  await peer.subscribeAsync(topicFor(prefix, server, 'dm'), { qos: 1 })
  await device.online.next()

  // The broker listens on 127.0.0.1, the device's url; `localhost` is another name for it.
  const sameBroker = `mqtt://${userInfo(device.deviceId)}@localhost:${mosquitto.port}`
  await device.transport.send({ to: server, account: 'gw', address: sameBroker, payload: Buffer.from('one'), contentType: XML })
  t.equal((await received.next()).payload.toString(), 'one')
  await device.transport.send({ to: server, address: sameBroker, payload: Buffer.from('two'), contentType: XML })
  t.equal((await received.next()).payload.toString(), 'two')

  const opened = device.logs.filter((l) => l.msg === 'opened connection to a party broker').map((l) => String(l.clientId))
  t.equal(opened.length, 2, 'a connection for the account, one for the message that names none')
  t.equal(opened[0], `gwmo-${device.deviceId}/gw`, '<clientId>/<account>')
  const [prefixPart, name] = (opened[1] ?? '').split('/')
  t.same([prefixPart, hex12.test(name ?? '')], [`gwmo-${device.deviceId}`, true], '<clientId>/<hash of the party> without an account')

  t.same(await status.seen(), ['online'], 'no offline: the main session was never taken over')
  t.notMatch(mosquitto.log(), /already connected, closing old connection/, 'the broker closed no session')
  // The main connection still hears its parties.
  await peer.publishAsync(device.dmTopic, 'still here', { qos: 1 })
  t.equal(Buffer.from((await device.messages.next()).payload).toString(), 'still here')
  t.equal(device.offline.size, 0, 'the device never went offline')
})

t.test('an AppAddr equal to the device\'s broker goes out on the main connection; another user name there gets its own', async (t) => {
  const mosquitto = await broker(t)
  const device = await startDevice(t, `mqtt://localhost:${mosquitto.port}`, { password: 'pw' })
  const { client: peer, received } = await startPeer(t, mosquitto.url)
  await peer.subscribeAsync(topicFor(prefix, server, 'dm'), { qos: 1 })
  await device.online.next()

  const port = mosquitto.port
  const same = [
    `mqtt://localhost:${port}`,
    `MQTT://LocalHost.:${port}/`,
    `mqtt://${userInfo(device.deviceId)}:another-password@localhost:${port}`,
  ]
  for (const address of same) {
    await device.transport.send({ to: server, account: 'dms', address, payload: Buffer.from(address), contentType: XML })
    t.equal((await received.next()).payload.toString(), address, `${address}: delivered`)
  }
  t.equal(device.logs.filter((l) => l.msg === 'opened connection to a party broker').length, 0, 'all on the main connection')
  t.equal(mosquitto.log().match(new RegExp(`New client connected .* as gwmo-${device.deviceId}[ /]`, 'g'))?.length, 1, 'one device connection')

  // Another identity on the same broker (here another device's, which its ACL lets publish to the server).
  const other = deviceIdOf(48)
  await device.transport.send({ to: server, account: 'other', address: `mqtt://${userInfo(other)}@localhost:${port}`, payload: Buffer.from('other'), contentType: XML })
  t.equal((await received.next()).payload.toString(), 'other')
  const opened = device.logs.filter((l) => l.msg === 'opened connection to a party broker')
  t.same(opened.map((l) => l.clientId), [`gwmo-${device.deviceId}/other`], 'another user name on the same broker: a connection of its own')
  t.match(mosquitto.log(), `as gwmo-${device.deviceId}/other (p5, c1, k30, u'${usernameFor(other)}')`, 'with the AppAddr\'s user name')
  t.notMatch(mosquitto.log(), /already connected, closing old connection/)
})

t.test('a party broker connection closes once idle and opens again for the next message', async (t) => {
  const main = await broker(t)
  const other = await partyBroker(t)
  const device = await startDevice(t, main.url, { partyBrokerIdleMs: 50 })
  const { client: peer, received } = await startPeer(t, other.url)
  await peer.subscribeAsync('party/dm', { qos: 1 })
  await device.online.next()
  const address = `${other.url}/party/dm`

  await device.transport.send({ to: server, account: 'gw', address, payload: Buffer.from('before'), contentType: XML })
  t.equal((await received.next()).payload.toString(), 'before')
  const closed = await logged(device, 'closing idle broker connection')
  t.same([closed.broker, closed.clientId], [`mqtt://127.0.0.1:${other.port}`, `gwmo-${device.deviceId}/gw`])
  while (!/Client gwmo-\S+\/gw disconnected/.test(other.log())) await new Promise((resolve) => setTimeout(resolve, 10))
  t.pass('the party broker saw the device leave')

  await device.transport.send({ to: server, account: 'gw', address, payload: Buffer.from('after'), contentType: XML })
  t.equal((await received.next()).payload.toString(), 'after')
  t.equal(device.logs.filter((l) => l.msg === 'opened connection to a party broker').length, 2, 'opened again')
  t.equal(device.offline.size, 0, 'the main connection is untouched')
})

t.test('an account whose AppAddr changes keeps one connection: the previous one is closed first', async (t) => {
  const main = await broker(t)
  const first = await partyBroker(t)
  const second = await partyBroker(t)
  const device = await startDevice(t, main.url)
  const peers = await Promise.all([first, second].map(async (b) => {
    const peer = await startPeer(t, b.url)
    await peer.client.subscribeAsync('party/dm', { qos: 1 })
    return peer
  }))
  await device.online.next()
  await device.transport.send({ to: server, account: 'gw', address: `${first.url}/party/dm`, payload: Buffer.from('a'), contentType: XML })
  t.equal((await peers[0]!.received.next()).payload.toString(), 'a')
  await device.transport.send({ to: server, account: 'gw', address: `${second.url}/party/dm`, payload: Buffer.from('b'), contentType: XML })
  t.equal((await peers[1]!.received.next()).payload.toString(), 'b')
  const retired = device.logs.find((l) => l.msg === 'closing the account\'s previous broker connection')
  t.same([retired?.broker, retired?.clientId], [`mqtt://127.0.0.1:${first.port}`, `gwmo-${device.deviceId}/gw`])

  await t.rejects(device.transport.send({ to: server, address: `mqtt://%zz@127.0.0.1:${first.port}/x`, payload: Buffer.from('x'), contentType: XML }),
    /cannot route to .*: address has a malformed user name or password/, 'a malformed AppAddr user name is refused, not thrown')
})
