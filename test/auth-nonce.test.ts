import { createHmac } from 'node:crypto'
import t from 'tap'
import { decodeNonce, deriveNonce, encodeNonce } from '../src/auth/nonce.ts'

const key = new Uint8Array(32).map((_, i) => i * 7 + 3)

t.test('deriveNonce is HMAC-SHA256 of the counter, cut to 16 bytes', async (t) => {
  const counter = Buffer.alloc(8)
  counter.writeBigUInt64BE(0x0102030405060708n)
  const expected = createHmac('sha256', key).update(counter).digest().subarray(0, 16)
  t.same(Buffer.from(deriveNonce(key, 0x0102030405060708n)), expected)
})

t.test('the same counter and key give the same nonce; other keys give others', async (t) => {
  t.same(deriveNonce(key, 42n), deriveNonce(key, 42n))
  const otherKey = key.slice()
  otherKey[0] ^= 1
  t.notSame(Buffer.from(deriveNonce(otherKey, 42n)), Buffer.from(deriveNonce(key, 42n)))
})

t.test('nonces are unique over a range of counters', async (t) => {
  const seen = new Set<string>()
  for (let c = 0n; c < 5000n; c++) seen.add(encodeNonce(deriveNonce(key, c)))
  for (const c of [(1n << 32n) - 1n, 1n << 32n, (1n << 64n) - 1n]) seen.add(encodeNonce(deriveNonce(key, c)))
  t.equal(seen.size, 5003)
})

t.test('deriveNonce refuses a short key and counters outside 64 bits', async (t) => {
  t.throws(() => deriveNonce(new Uint8Array(15), 1n), RangeError)
  t.throws(() => deriveNonce(key, -1n), RangeError)
  t.throws(() => deriveNonce(key, 1n << 64n), RangeError)
})

t.test('encodeNonce and decodeNonce round trip as base64', async (t) => {
  const nonce = deriveNonce(key, 7n)
  const text = encodeNonce(nonce)
  t.equal(text, Buffer.from(nonce).toString('base64'))
  t.same(decodeNonce(text), nonce)
  const example = 'LG3iZQhhdmKNHg==' // the NextNonce of the OMA Chal example
  t.same(decodeNonce(example), new Uint8Array(Buffer.from(example, 'base64')), 'OMA example NextNonce')
  t.same(decodeNonce('LG3iZQhhdmKNHg'), decodeNonce('LG3iZQhhdmKNHg=='), 'padding optional')
  t.same(decodeNonce(' LG3iZQhh\r\n dmKNHg== '), decodeNonce('LG3iZQhhdmKNHg=='), 'whitespace ignored')
  t.same(decodeNonce(''), new Uint8Array(0))
})

t.test('decodeNonce refuses what is not base64', async (t) => {
  const bad = ['LG3i*QhhdmKNHg==', 'LG3iZ', 'LG3iZQ=hdmKNHg==', 'LG3iZQhhdmKNHg===', 'LG3iZQhhdmKNH==']
  bad.push('LG3i-QhhdmKN_g==', 'QQ=', 'é')
  for (const text of bad) {
    t.equal(decodeNonce(text), undefined, JSON.stringify(text))
  }
})
