import t from 'tap'
import { classifyInbound, packetSize } from '../src/transport/inbound.ts'
import { topicFor } from '../src/transport/topics.ts'

const expected = { prefix: 'omadm/v1', deviceId: 'IMEI:493005100592800', maxPacketSize: 1024 }
const dm = topicFor(expected.prefix, expected.deviceId, 'dm')
const bytes = (n: number) => new Uint8Array(n).fill(0x41)

t.test('packetSize counts the fixed header (MQTT 5, 2.1.4)', async (t) => {
  t.equal(packetSize(0), 2)
  t.equal(packetSize(127), 129)
  t.equal(packetSize(128), 131)
  t.equal(packetSize(16383), 16386)
  t.equal(packetSize(16384), 16388)
  t.equal(packetSize(2097152), 2097152 + 5)
})

t.test('a message on an own topic is delivered with its channel, content type and properties', async (t) => {
  const payload = bytes(10)
  const result = classifyInbound(expected, dm, payload, {
    length: 100,
    properties: {
      contentType: 'application/vnd.syncml.dm+xml',
      userProperties: { 'x-syncml-hmac': 'algorithm=MD5, username="srv", mac=abc', repeated: ['first', 'second'] },
    },
  })
  t.same(result, {
    ok: true,
    message: {
      channel: 'dm',
      payload,
      contentType: 'application/vnd.syncml.dm+xml',
      properties: { 'x-syncml-hmac': 'algorithm=MD5, username="srv", mac=abc', repeated: 'first' },
    },
  })
  const bare = classifyInbound(expected, topicFor(expected.prefix, expected.deviceId, 'bootstrap'), payload, {})
  t.same(bare, { ok: true, message: { channel: 'bootstrap', payload, properties: {} } }, 'no content type, no properties')
})

t.test('a packet over the announced maximum is dropped even when the broker sent it anyway', async (t) => {
  t.same(classifyInbound(expected, dm, bytes(900), { length: 1021 }), { ok: true, message: { channel: 'dm', payload: bytes(900), properties: {} } })
  t.same(classifyInbound(expected, dm, bytes(900), { length: 1022 }), { ok: false, reason: 'too-large', bytes: 1025 })
  t.same(classifyInbound(expected, dm, bytes(2000), {}), { ok: false, reason: 'too-large', bytes: 2000 + dm.length },
    'without a parsed length the payload alone decides')
})

t.test('a message on any other topic is dropped', async (t) => {
  for (const topic of [
    topicFor(expected.prefix, expected.deviceId, 'status'),
    topicFor(expected.prefix, 'IMEI:000000000000000', 'dm'),
    'some/other/topic',
  ]) {
    t.same(classifyInbound(expected, topic, bytes(1), { length: 20 }), { ok: false, reason: 'unknown-topic' }, topic)
  }
})
