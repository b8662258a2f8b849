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
