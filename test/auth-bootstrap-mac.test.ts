import { createHmac } from 'node:crypto'
import t from 'tap'
import { bootstrapMac, userPinTooShort, verifyBootstrapMac } from '../src/auth/bootstrap-mac.ts'

const payload = new Uint8Array(Buffer.from('02a4016a006d6c71c3', 'hex'))
const secrets = { userPin: '123456', networkId: '001010123456789' }
const hmacSha1 = (key: string, data: Uint8Array) => createHmac('sha1', key).update(data).digest('hex')

t.test('bootstrapMac is lower-case hex HMAC-SHA1 (RFC 2202 test case 2)', async (t) => {
  const data = new Uint8Array(Buffer.from('what do ya want for nothing?'))
  t.equal(bootstrapMac('Jefe', data), 'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79')
})

t.test('each SEC method uses its key', async (t) => {
  const table = [
    { sec: 'NETWORKID', key: secrets.networkId },
    { sec: 'USERPIN', key: secrets.userPin },
    { sec: 'USERPIN_NETWORKID', key: `${secrets.userPin}:${secrets.networkId}` },
  ] as const
  for (const { sec, key } of table) {
    const mac = hmacSha1(key, payload)
    t.same(verifyBootstrapMac(payload, sec, mac, secrets), { ok: true, method: sec }, sec)
    const otherCase = verifyBootstrapMac(payload, sec.toLowerCase(), mac.toUpperCase(), secrets)
    t.same(otherCase, { ok: true, method: sec }, `${sec}, other case`)
    for (const other of table.filter((o) => o.sec !== sec)) {
      const r = verifyBootstrapMac(payload, other.sec, mac, secrets)
      t.same(r, { ok: false, reason: 'bad-mac' }, `${sec} MAC under ${other.sec}`)
    }
  }
})

t.test('every refusal has its reason', async (t) => {
  const good = hmacSha1(secrets.networkId, payload)
  const tampered = payload.slice()
  tampered[0] ^= 1
  type Secrets = { userPin?: string; networkId?: string }
  const table: [string, Uint8Array, string | undefined, string | undefined, Secrets, string][] = [
    ['no SEC', payload, undefined, good, secrets, 'missing-sec'],
    ['blank SEC', payload, '  ', good, secrets, 'missing-sec'],
    ['CP naming', payload, 'NETWPIN', good, secrets, 'unknown-sec'],
    ['numeric SEC', payload, '0', good, secrets, 'unknown-sec'],
    ['NETWORKID without networkId', payload, 'NETWORKID', good, { userPin: '1234' }, 'secret-not-configured'],
    ['USERPIN without userPin', payload, 'USERPIN', good, { networkId: 'n' }, 'secret-not-configured'],
    ['PIN+NETWORKID without networkId', payload, 'USERPIN_NETWORKID', good, { userPin: '1' }, 'secret-not-configured'],
    ['PIN+NETWORKID without userPin', payload, 'USERPIN_NETWORKID', good, { networkId: 'n' }, 'secret-not-configured'],
    ['empty secret', payload, 'USERPIN', good, { userPin: '' }, 'secret-not-configured'],
    ['USERPIN with a 5-character PIN, its own MAC', payload, 'USERPIN', hmacSha1('12345', payload), { userPin: '12345' }, 'short-pin'],
    ['no MAC', payload, 'NETWORKID', undefined, secrets, 'missing-mac'],
    ['empty MAC', payload, 'NETWORKID', '', secrets, 'missing-mac'],
    ['wrong MAC', payload, 'NETWORKID', hmacSha1('other', payload), secrets, 'bad-mac'],
    ['tampered payload', tampered, 'NETWORKID', good, secrets, 'bad-mac'],
    ['truncated MAC', payload, 'NETWORKID', good.slice(0, 38), secrets, 'bad-mac'],
    ['MAC not hex', payload, 'NETWORKID', 'z' + good.slice(1), secrets, 'bad-mac'],
    ['MAC as base64', payload, 'NETWORKID', Buffer.from(good, 'hex').toString('base64'), secrets, 'bad-mac'],
  ]
  for (const [name, data, sec, mac, s, reason] of table) {
    t.same(verifyBootstrapMac(data, sec, mac, s), { ok: false, reason }, name)
  }
})

t.test('surrounding whitespace in SEC and MAC is tolerated', async (t) => {
  const mac = hmacSha1(secrets.userPin, payload)
  t.same(verifyBootstrapMac(payload, ' USERPIN ', ` ${mac}\n`, secrets), { ok: true, method: 'USERPIN' })
})

t.test('USERPIN alone needs a PIN of 6 characters or more; USERPIN_NETWORKID takes any', async (t) => {
  for (const [pin, short] of [['12345', true], ['123456', false], ['ééééé', true], ['éééééé', false], ['', false]] as const) {
    t.equal(userPinTooShort({ userPin: pin }), short, `${JSON.stringify(pin)}: ${[...pin].length} characters`)
  }
  t.equal(userPinTooShort({}), false, 'no PIN: nothing to say (the method is not configured)')
  const both = { userPin: '1234', networkId: secrets.networkId }
  const mac = hmacSha1(`1234:${secrets.networkId}`, payload)
  t.same(verifyBootstrapMac(payload, 'USERPIN_NETWORKID', mac, both), { ok: true, method: 'USERPIN_NETWORKID' })
  t.same(verifyBootstrapMac(payload, 'USERPIN', hmacSha1('1234', payload), both), { ok: false, reason: 'short-pin' })
})
