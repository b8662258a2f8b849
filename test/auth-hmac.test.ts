import { createHash } from 'node:crypto'
import t from 'tap'
import { computeHmacMac, formatHmacHeader, parseHmacHeader, verifyHmac } from '../src/auth/hmac.ts'

const md5 = (b: Uint8Array | string) => createHash('md5').update(b).digest()
const enc = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'))

// OMA DM Security 1.2, 5.1.3, computed here independently of the module under test
function expectedMac(user: string, password: string, nonce: Uint8Array, body: Uint8Array): string {
  const inner = md5(`${user}:${password}`).toString('base64')
  const bodyHash = md5(body).toString('base64')
  return md5(Buffer.concat([Buffer.from(inner + ':'), nonce, Buffer.from(':' + bodyHash)])).toString('base64')
}

const body = enc('<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr/><SyncBody><Final/></SyncBody></SyncML>')
const nonce = new Uint8Array([0x12, 0x00, 0xfe, 0x7f])

t.test('computeHmacMac follows the formula', async (t) => {
  t.equal(computeHmacMac('Robert Jordan', 'secret', nonce, body), expectedMac('Robert Jordan', 'secret', nonce, body))
  const other = computeHmacMac('Robert Jordan', 'secret', nonce, enc('x'))
  t.not(computeHmacMac('Robert Jordan', 'secret', nonce, body), other)
})

t.test('formatHmacHeader writes the OMA form', async (t) => {
  t.equal(
    formatHmacHeader({ username: 'Robert Jordan', mac: 'AAAA' }),
    'algorithm=MD5, username="Robert Jordan", mac=AAAA',
  )
  t.equal(
    formatHmacHeader({ algorithm: 'MD5', username: 'a"b\\c', mac: 'AAAA' }),
    'algorithm=MD5, username="a\\"b\\\\c", mac=AAAA',
  )
})

t.test('parseHmacHeader reads what the ABNF allows', async (t) => {
  const mac = 'NTI2OTJhMDAwNjYxODkwYmQ3NWUxN2RhN2ZmYmJlMzk'
  const rj = 'Robert Jordan'
  const table: [string, string, { algorithm: string; username: string; mac: string }][] = [
    ['OMA example', `algorithm=MD5, username="Robert Jordan", mac=${mac}`, { algorithm: 'MD5', username: rj, mac }],
    ['no algorithm', `username="Robert Jordan", mac=${mac}`, { algorithm: 'MD5', username: rj, mac }],
    ['any order', `mac=${mac},username="Robert Jordan" ,algorithm=md5`, { algorithm: 'MD5', username: rj, mac }],
    ['spaces around =', `  username = "R J" ,  mac = ${mac}  `, { algorithm: 'MD5', username: 'R J', mac }],
    ['escaped quote', `username="Say \\"hi\\"", mac=${mac}`, { algorithm: 'MD5', username: 'Say "hi"', mac }],
    ['escaped backslash', `username="a\\\\b", mac=${mac}`, { algorithm: 'MD5', username: 'a\\b', mac }],
    ['comma inside quotes', `username="Jordan, R", mac=${mac}`, { algorithm: 'MD5', username: 'Jordan, R', mac }],
    ['padded mac with / and +', 'username="u", mac=ab/+cd==', { algorithm: 'MD5', username: 'u', mac: 'ab/+cd==' }],
    ['quoted mac', 'username="u", mac="ab/+cd=="', { algorithm: 'MD5', username: 'u', mac: 'ab/+cd==' }],
    ['upper-case names', `ALGORITHM=MD5, UserName="u", MAC=${mac}`, { algorithm: 'MD5', username: 'u', mac }],
    ['unknown param skipped', `realm="x", username="u", mac=${mac}`, { algorithm: 'MD5', username: 'u', mac }],
    ['empty list elements', `,username="u",, mac=${mac},`, { algorithm: 'MD5', username: 'u', mac }],
    ['token username', `username=robert, mac=${mac}`, { algorithm: 'MD5', username: 'robert', mac }],
  ]
  for (const [name, value, expected] of table) {
    const r = parseHmacHeader(value)
    t.same(r, { ok: true, value: expected }, name)
  }
})

t.test('parseHmacHeader refuses what it cannot trust', async (t) => {
  const table: [string, string, RegExp][] = [
    ['missing mac', 'algorithm=MD5, username="u"', /mac missing/],
    ['missing username', 'algorithm=MD5, mac=AAAA', /username missing/],
    ['empty username', 'username="", mac=AAAA', /username missing/],
    ['unknown algorithm', 'algorithm=SHA1, username="u", mac=AAAA', /unsupported algorithm/],
    ['mac not base64', 'username="u", mac=AA*A', /expected ","|not base64/],
    ['mac impossible length', 'username="u", mac=A', /not base64/],
    ['empty mac', 'username="u", mac=""', /mac missing/],
    ['unterminated quote', 'username="Robert, mac=AAAA', /unterminated/],
    ['duplicate', 'username="u", username="v", mac=AAAA', /twice/],
    ['no =', 'username "u", mac=AAAA', /expected "="/],
    ['no value', 'username=, mac=AAAA', /no value/],
    ['missing comma', 'username="u" mac=AAAA', /expected ","/],
    ['empty header', '', /username missing/],
  ]
  for (const [name, value, message] of table) {
    const r = parseHmacHeader(value)
    t.equal(r.ok, false, name)
    if (!r.ok) {
      t.equal(r.error.code, 'PAYLOAD_FORMAT', `${name}: code`)
      t.match(r.error.message, message, `${name}: message`)
    }
  }
})

t.test('format and parse round trip, names with spaces and escapes', async (t) => {
  for (const username of ['Robert Jordan', 'a"b', 'back\\slash', ' lead, trail ', 'Zoë']) {
    const mac = computeHmacMac(username, 'pw', nonce, body)
    const r = parseHmacHeader(formatHmacHeader({ username, mac }))
    t.same(r, { ok: true, value: { algorithm: 'MD5', username, mac } }, username)
  }
})

t.test('verifyHmac checks the mac against password, nonce and body', async (t) => {
  const mac = expectedMac('Robert Jordan', 'secret', nonce, body)
  const header = formatHmacHeader({ username: 'Robert Jordan', mac })
  t.equal(verifyHmac(header, 'secret', nonce, body), true)
  t.equal(verifyHmac(header, 'secret', nonce, body, 'Robert Jordan'), true, 'expected user')
  t.equal(verifyHmac(header, 'secret', nonce, body, 'Someone Else'), false, 'other user')
  t.equal(verifyHmac(header, 'Secret', nonce, body), false, 'wrong password')
  t.equal(verifyHmac(header, 'secret', new Uint8Array([0x12, 0x00, 0xfe, 0x7e]), body), false, 'wrong nonce')
  const tampered = body.slice()
  tampered[10] ^= 1
  t.equal(verifyHmac(header, 'secret', nonce, tampered), false, 'tampered body')
  t.equal(verifyHmac(header.replace('Robert Jordan', 'Robert Jordon'), 'secret', nonce, body), false, 'renamed user')
  t.equal(verifyHmac('username="Robert Jordan"', 'secret', nonce, body), false, 'malformed header')
  const unpadded = header.replace(/=+$/, '')
  t.equal(verifyHmac(unpadded, 'secret', nonce, body), true, 'mac without padding')
})
