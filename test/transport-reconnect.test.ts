/**
 * How the MQTT binding comes back to a broker (binding.md §2): a connection attempt never waits longer than its
 * connect timeout for a CONNACK, and the delay between attempts grows while the broker is away, never past its
 * cap, and starts over once the device is connected again.
 */
import t from 'tap'
import { connect as netConnect, createServer, type Socket } from 'node:net'
import { createLogger } from '../src/log.ts'
import { TRANSPORT_TIMINGS } from '../src/transport/backoff.ts'
import { openConnection } from '../src/transport/mqtt-client.ts'
import { createMqttTransport } from '../src/transport/bindings/mqtt.ts'
import { usernameFor } from './helpers/broker-world.ts'
import { freePort } from './helpers/free-port.ts'
import { startMosquitto } from './helpers/mosquitto.ts'

const DEVICE = 'mac:01-ab-34-ef-69-0c'
const quiet = createLogger({ level: 'error', write: () => {} })

/** Resolves once `probe` holds, checked every 20 ms; rejects after `ms` (a liveness bound, not a measurement). */
async function eventually(probe: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

t.test('an attempt that gets no CONNACK is given up after the connect timeout; the device is online once a broker answers', async (t) => {
  const broker = await startMosquitto()
  t.teardown(() => broker.stop())
  // A host that accepts and never answers (a broker hung, or a proxy in front of one that is gone) for the first
  // two attempts, then relays to the real broker.
  const sockets = new Set<Socket>()
  let accepted = 0
  const listener = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
    if (++accepted <= 2) return
    const upstream = netConnect({ host: '127.0.0.1', port: broker.port })
    upstream.on('error', () => socket.destroy())
    socket.on('close', () => upstream.destroy())
    socket.pipe(upstream).pipe(socket)
  })
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy()
    listener.close(() => resolve())
  }))
  const port = (listener.address() as { port: number }).port

  const logs: Array<Record<string, unknown>> = []
  let online = 0
  const transport = createMqttTransport({
    url: `mqtt://127.0.0.1:${port}`,
    username: usernameFor(DEVICE),
    clientId: `gwmo-${DEVICE}`,
    keepaliveSeconds: 30,
    prefix: 'omadm/v1',
    deviceId: DEVICE,
    maxPacketSize: 65536,
    logger: createLogger({ level: 'debug', write: (line) => logs.push(JSON.parse(line)) }),
    reconnect: { baseMs: 50, capMs: 100 },
    connectTimeoutMs: 300,
  })
  await transport.start({ message() {}, online: () => void online++, offline() {} })
  t.teardown(() => transport.stop())

  // MQTT.js's own 30 s would leave the first silent attempt waiting far past this bound.
  await eventually(() => online > 0, 10_000, 'online')
  t.ok(accepted >= 3, `the silent attempts were given up and another made (${accepted} connections)`)
  t.ok(logs.some((l) => l.msg === 'mqtt connection error' && /connack timeout/.test(String(l.error))), 'each was logged as a connack timeout')
})

t.test('without an option the connect timeout is the transport\'s own, not MQTT.js\'s 30 s', async (t) => {
  const port = await freePort()
  const common = { url: `mqtt://127.0.0.1:${port}`, clientId: 'gwmo-test', keepaliveSeconds: 30, logger: quiet, reconnect: { baseMs: 1000, capMs: 1000 } }
  const plain = openConnection(common)
  const given = openConnection({ ...common, connectTimeoutMs: 1234 })
  t.teardown(() => Promise.all([plain, given].map(({ client }) => new Promise((resolve) => client.end(true, resolve)))))
  t.equal(plain.client.options.connectTimeout, TRANSPORT_TIMINGS.connectTimeoutMs)
  t.ok(TRANSPORT_TIMINGS.connectTimeoutMs < 30_000, 'shorter than MQTT.js\'s default')
  t.equal(given.client.options.connectTimeout, 1234)
})

t.test('the delay before each attempt grows while the broker is away, stays under the cap, and starts over once connected', async (t) => {
  // Nothing listens here: every attempt is refused at once, and the delays are all there is to see.
  const port = await freePort()
  const { client, connected } = openConnection({
    url: `mqtt://127.0.0.1:${port}`,
    clientId: 'gwmo-test',
    keepaliveSeconds: 30,
    logger: quiet,
    // The top of each ceiling, so that the delays show the ceilings themselves.
    reconnect: { baseMs: 40, capMs: 160, random: () => 0.999 },
  })
  t.teardown(() => new Promise((resolve) => client.end(true, resolve)))
  const delays: number[] = [client.options.reconnectPeriod!]
  // The transport sets the next delay first thing on `close`; a listener added later sees it.
  client.on('close', () => delays.push(client.options.reconnectPeriod!))
  await eventually(() => delays.length >= 5, 10_000, 'five refused attempts')
  t.same(delays.slice(0, 5), [39, 79, 159, 159, 159], 'doubling from the base, then held at the cap')
  connected()
  const after = delays.length
  await eventually(() => delays.length > after, 10_000, 'one more refused attempt')
  t.equal(delays[after], 39, 'back to the base after a connection')
})
