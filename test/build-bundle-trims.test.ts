// What the bundle leaves out of its dependencies (build/esbuild-options.mjs): the LRU cache it gives MQTT.js's topic
// aliases in place of the lru-cache package (build/shims/lru-cache.cjs), and all of MQTT.js's manifest but its version.
import { createRequire } from 'node:module'
import t from 'tap'

const require = createRequire(import.meta.url)
const { LRUCache } = require('../build/shims/lru-cache.cjs') as {
  LRUCache: new (options: { max: number }) => {
    size: number
    get(key: number): string | undefined
    set(key: number, value: string): unknown
    has(key: number): boolean
    delete(key: number): boolean
    clear(): void
    keys(): Iterable<number>
  }
}

t.test('get marks the most recently used, set evicts the least recently used past max, keys() most recent first', async (t) => {
  const cache = new LRUCache({ max: 3 })
  cache.set(1, 'a')
  cache.set(2, 'b')
  cache.set(3, 'c')
  t.same([...cache.keys()], [3, 2, 1])
  t.equal(cache.get(1), 'a', 'a get')
  t.same([...cache.keys()], [1, 3, 2], 'moves the entry to the front')
  cache.set(4, 'd')
  t.equal(cache.size, 3)
  t.notOk(cache.has(2), 'the least recently used went')
  // topic-alias-send.js takes the alias to reuse as the last of keys(): the least recently used.
  t.equal([...cache.keys()][cache.size - 1], 3)
  t.equal(cache.get(9), undefined)
  t.ok(cache.delete(3))
  cache.clear()
  t.equal(cache.size, 0)
  t.same([...cache.keys()], [])
})

t.test('the bundle carries MQTT.js\'s version, not its manifest', async (t) => {
  const { readFileSync } = await import('node:fs')
  const bundle = readFileSync(new URL('../dist/gwmo-agent.js', import.meta.url), 'utf8')
  const { version, homepage } = JSON.parse(readFileSync(new URL('../node_modules/mqtt/package.json', import.meta.url), 'utf8')) as { version: string; homepage: string }
  t.ok(bundle.includes(JSON.stringify(version)) || bundle.includes(`version:"${version}"`), 'the version is there')
  t.notOk(bundle.includes(homepage), 'the rest of the manifest is not')
})

t.test('the packet copier copies what a packet holds, sharing nothing with it', async (t) => {
  const clone = require('../build/shims/rfdc-default.cjs') as <T>(value: T) => T
  const packet = {
    cmd: 'publish',
    qos: 1,
    payload: Buffer.from('abc'),
    properties: { contentType: 'application/vnd.syncml.dm+xml', userProperties: { 'x-syncml-hmac': 'algorithm=MD5' }, correlationData: new Uint8Array([1, 2]) },
    topics: [{ topic: 'a', qos: 1 }],
    at: new Date(5),
    nothing: null,
  }
  const copy = clone(packet)
  t.same(copy, packet)
  t.ok(Buffer.isBuffer(copy.payload), 'a Buffer stays a Buffer')
  copy.payload[0] = 0x7a
  copy.properties.userProperties['x-syncml-hmac'] = 'changed'
  copy.properties.correlationData[0] = 9
  copy.topics[0]!.qos = 0
  t.equal(packet.payload.toString(), 'abc', 'bytes are copied, not shared')
  t.equal(packet.properties.userProperties['x-syncml-hmac'], 'algorithm=MD5', 'nested objects are copied')
  t.equal(packet.properties.correlationData[0], 1)
  t.equal(packet.topics[0]!.qos, 1, 'arrays are copied')
  t.not(copy.at, packet.at)
  t.equal(copy.at.getTime(), 5)
})
