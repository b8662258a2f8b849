import t from 'tap'
import { brokerOrigin, deviceTopics, isValidTopicName, parseTopic, routeFor, topicFor } from '../src/transport/topics.ts'

const prefix = 'omadm/v1'
const device = 'mac:01-ab-34-ef-69-0c'

t.test('topicFor encodes the LocURI into one level (binding.md §2)', async (t) => {
  t.equal(topicFor(prefix, device, 'dm'), 'omadm/v1/mac%3A01-ab-34-ef-69-0c/dm')
  t.equal(topicFor(prefix, 'http://www.someDMServer.com', 'dm'), 'omadm/v1/http%3A%2F%2Fwww.someDMServer.com/dm')
  t.equal(topicFor('p', 'a/+/#', 'notification'), 'p/a%2F%2B%2F%23/notification', 'no wildcard or separator reaches a level')
  t.equal(topicFor(prefix, 'IMEI:493005100592800', 'status'), 'omadm/v1/IMEI%3A493005100592800/status')
  t.same(deviceTopics(prefix, device), [
    'omadm/v1/mac%3A01-ab-34-ef-69-0c/dm',
    'omadm/v1/mac%3A01-ab-34-ef-69-0c/notification',
    'omadm/v1/mac%3A01-ab-34-ef-69-0c/bootstrap',
  ])
})

t.test('parseTopic maps only the device\'s own inbound topics to a channel', async (t) => {
  for (const channel of ['dm', 'notification', 'bootstrap'] as const) {
    t.equal(parseTopic(prefix, device, topicFor(prefix, device, channel)), channel)
  }
  const unknown = [
    topicFor(prefix, device, 'status'),
    topicFor(prefix, 'mac:ff-ff-ff-ff-ff-ff', 'dm'),
    topicFor('other/prefix', device, 'dm'),
    `${topicFor(prefix, device, 'dm')}/extra`,
    `omadm/v1/${device}/dm`,
    'omadm/v1',
    '',
  ]
  for (const topic of unknown) t.equal(parseTopic(prefix, device, topic), undefined, `unknown: ${topic}`)
})

t.test('brokerOrigin writes the default port out and rejects other schemes', async (t) => {
  t.equal(brokerOrigin('mqtt://Broker.Example'), 'mqtt://broker.example:1883')
  t.equal(brokerOrigin('mqtts://broker.example'), 'mqtts://broker.example:8883')
  t.equal(brokerOrigin('mqtt://broker.example:1883/a/b'), 'mqtt://broker.example:1883')
  t.equal(brokerOrigin('mqtt://u:p@127.0.0.1:4000'), 'mqtt://127.0.0.1:4000')
  t.equal(brokerOrigin('mqtt://[::1]:4000'), 'mqtt://[::1]:4000')
  t.equal(brokerOrigin('mqtt://Broker.Example.:1883/x'), 'mqtt://broker.example:1883', 'a trailing dot names the same host')
  t.equal(brokerOrigin('MQTTS://broker.example'), 'mqtts://broker.example:8883', 'the scheme in any case')
  t.equal(brokerOrigin('mqtt://.'), undefined, 'no host left')
  t.equal(brokerOrigin('http://broker.example'), undefined)
  t.equal(brokerOrigin('not a url'), undefined)
})

t.test('routeFor follows an mqtt AppAddr, else the default topic on the agent\'s broker', async (t) => {
  const mainOrigin = 'mqtt://127.0.0.1:1883'
  const to = 'http://dms.example'
  const defaultTopic = 'omadm/v1/http%3A%2F%2Fdms.example/dm'
  t.same(routeFor({ prefix, mainOrigin, to }), { ok: true, route: { origin: mainOrigin, topic: defaultTopic } })
  t.same(routeFor({ prefix, mainOrigin, to, address: 'http://dms.example/omadm' }),
    { ok: true, route: { origin: mainOrigin, topic: defaultTopic } }, 'an HTTP AppAddr is not a broker')
  t.same(routeFor({ prefix, mainOrigin, to, address: 'mqtt://other.example:2883/site/7/dm' }),
    { ok: true, route: { origin: 'mqtt://other.example:2883', topic: 'site/7/dm' } })
  t.same(routeFor({ prefix, mainOrigin, to, address: 'mqtts://other.example' }),
    { ok: true, route: { origin: 'mqtts://other.example:8883', topic: defaultTopic } }, 'no path: default topic there')
  t.same(routeFor({ prefix, mainOrigin, to, address: 'mqtt://127.0.0.1/omadm/v1/http%3A%2F%2Fdms.example/dm' }),
    { ok: true, route: { origin: mainOrigin, topic: defaultTopic } }, 'the path is taken as written, still encoded')
  t.same(routeFor({ prefix, mainOrigin, to, address: 'mqtt://other.example/a/+/b' }),
    { ok: false, reason: 'address path is not a valid topic name' })
  t.same(routeFor({ prefix, mainOrigin, to, address: 'mqtt://other.example/a?x=1' }),
    { ok: false, reason: 'address has a query or fragment' })
})

t.test('isValidTopicName', async (t) => {
  t.ok(isValidTopicName('a/b/c'))
  t.notOk(isValidTopicName(''))
  t.notOk(isValidTopicName('a/#'))
  t.notOk(isValidTopicName('a/+/c'))
  t.notOk(isValidTopicName('a\u0000b'))
})
