/**
 * The demo's embedded MQTT 5 broker does what the agent relies on a broker for (binding.md §2): properties
 * passed on, retained status, the will on an unclean end and none on a clean one, topic filters, MQTT 5 only.
 */
import t from 'tap'
import { connect as netConnect } from 'node:net'
import mqtt, { type MqttClient } from 'mqtt'
import { startEmbeddedBroker, topicMatches } from './peers/embedded-broker.ts'
import { connectPeer, disconnect, publish, subscribe } from './peers/mqtt.ts'

interface Received {
  topic: string
  payload: Buffer
  retain: boolean
  properties: Record<string, unknown>
}

function record(client: MqttClient): Received[] {
  const received: Received[] = []
  client.on('message', (topic, payload, packet) =>
    received.push({ topic, payload, retain: packet.retain, properties: { ...packet.properties } }))
  return received
}

/** Polls until `condition` holds (the broker's deliveries have no event of their own here). */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  if (!condition()) throw new Error(`never: ${what}`)
}

t.test('topic filters: + one level, # the rest, no wildcard match of $ topics', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['omadm/v1/+/dm', 'omadm/v1/dev/dm', true],
    ['omadm/v1/+/dm', 'omadm/v1/dev/status', false],
    ['omadm/v1/#', 'omadm/v1/dev/dm', true],
    ['omadm/v1/#', 'omadm/v1', true],
    ['omadm/v1/dev', 'omadm/v1/dev/dm', false],
    ['#', '$SYS/uptime', false],
    ['+/x', '/x', true],
  ]
  for (const [filter, topic, expected] of cases) t.equal(topicMatches(filter, topic), expected, `${filter} ~ ${topic}`)
})

t.test('a PUBLISH reaches a matching subscriber with its content type and user properties', async (t) => {
  const broker = await startEmbeddedBroker()
  t.teardown(() => broker.close())
  const device = await connectPeer(broker.url)
  const party = await connectPeer(broker.url)
  t.teardown(async () => {
    await disconnect(device)
    await disconnect(party)
  })
  const received = record(device)
  await subscribe(device, 'omadm/v1/+/bootstrap')
  await publish(party, 'omadm/v1/dev/bootstrap', new Uint8Array([2, 0, 0, 0x6a]), {
    contentType: 'application/vnd.syncml.dm+wbxml',
    userProperties: { SEC: 'NETWORKID', MAC: 'ab12' },
  })
  await until(() => received.length === 1, 'delivery')
  t.same([...received[0]!.payload], [2, 0, 0, 0x6a])
  t.equal(received[0]!.properties.contentType, 'application/vnd.syncml.dm+wbxml')
  t.same(received[0]!.properties.userProperties, { SEC: 'NETWORKID', MAC: 'ab12' })
})

t.test('the will is published on an unclean end, retained; a clean DISCONNECT discards it', async (t) => {
  const broker = await startEmbeddedBroker()
  t.teardown(() => broker.close())
  const topic = 'omadm/v1/dev/status'
  const willing = (clientId: string) =>
    new Promise<MqttClient>((resolve) => {
      const will = { topic, payload: Buffer.from(`offline ${clientId}`), qos: 1 as const, retain: true }
      const client = mqtt.connect(broker.url, { protocolVersion: 5, clientId, will, reconnectPeriod: 0 })
      client.once('connect', () => resolve(client))
    })
  const live = await connectPeer(broker.url)
  t.teardown(() => disconnect(live))
  const seen = record(live)
  await subscribe(live, 'omadm/v1/+/status')

  // One after the other: a will of the clean client would reach the subscriber first.
  const clean = await willing('clean')
  await new Promise<void>((resolve) => clean.end(false, {}, () => resolve()))
  const unclean = await willing('unclean')
  ;(unclean.stream as { destroy(): void }).destroy()
  unclean.end(true)
  await until(() => seen.length >= 1, 'a will')
  t.same(seen.map((m) => m.payload.toString()), ['offline unclean'], 'only the unclean end published its will')

  const later = await connectPeer(broker.url)
  t.teardown(() => disconnect(later))
  const retained = record(later)
  await subscribe(later, 'omadm/v1/+/status')
  await until(() => retained.length >= 1, 'the retained will')
  t.equal(retained[0]!.payload.toString(), 'offline unclean')
  t.equal(retained[0]!.retain, true, 'flagged retained for a new subscription')
})

t.test('an MQTT 3.1.1 CONNECT is refused', async (t) => {
  const broker = await startEmbeddedBroker()
  t.teardown(() => broker.close())
  const refused = await new Promise<boolean>((resolve) => {
    const client = mqtt.connect(broker.url, { protocolVersion: 4, reconnectPeriod: 0 })
    client.once('connect', () => {
      client.end(true)
      resolve(false)
    })
    client.once('error', () => {
      client.end(true)
      resolve(true)
    })
  })
  t.equal(refused, true)
})

t.test('a client whose socket breaks mid-packet does not take the broker down', async (t) => {
  const broker = await startEmbeddedBroker()
  t.teardown(() => broker.close())
  await new Promise<void>((resolve) => {
    const socket = netConnect(broker.port, '127.0.0.1', () => {
      socket.end(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]))
    })
    socket.on('close', () => resolve())
    socket.on('error', () => resolve())
  })
  const client = await connectPeer(broker.url)
  t.ok(client.connected, 'still serving')
  await disconnect(client)
})
