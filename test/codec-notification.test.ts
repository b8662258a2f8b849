import { createHash } from 'node:crypto'
import fc from 'fast-check'
import t from 'tap'
import { buildNotification, parseNotification } from '../src/codec/notification.ts'

// Vectors are assembled here from the bit layout of OMA DM Notification 1.2, 6.2 (libdmclient's masks), not with
// the codec under test: version 63..54, ui-mode 53..52, initiator 51, future 50..24, session id 23..8, length 7..0.
interface HeaderFields {
  version?: number
  uiMode?: number
  initiator?: number
  future?: bigint
  sessionId?: number
  length: number
}

function header(f: HeaderFields): Uint8Array {
  const h =
    (BigInt(f.version ?? 11) << 54n) |
    (BigInt(f.uiMode ?? 0) << 52n) |
    (BigInt(f.initiator ?? 1) << 51n) |
    ((f.future ?? 0n) << 24n) |
    (BigInt(f.sessionId ?? 1) << 8n) |
    BigInt(f.length)
  const out = new Uint8Array(8)
  for (let i = 0; i < 8; i++) out[i] = Number((h >> BigInt(56 - 8 * i)) & 0xffn)
  return out
}

const md5 = (b: Uint8Array | string) => createHash('md5').update(b).digest()
const b64md5 = (b: Uint8Array | string) => md5(b).toString('base64')

interface MessageFields extends Omit<HeaderFields, 'length'> {
  serverId: Uint8Array | string
  length?: number
  vendor?: Uint8Array
  digest?: Uint8Array
}

function message(fields: MessageFields): Uint8Array {
  const id = typeof fields.serverId === 'string' ? Buffer.from(fields.serverId, 'utf8') : fields.serverId
  const head = header({ ...fields, length: fields.length ?? id.length })
  const trigger = Buffer.concat([head, id, fields.vendor ?? new Uint8Array(0)])
  return new Uint8Array(Buffer.concat([fields.digest ?? new Uint8Array(16).fill(0xaa), trigger]))
}

t.test('a literal vector decodes field by field', async (t) => {
  // version 11, background, server-initiated, session 0x1234, "srv"; header worked out by hand
  const hex = '00112233445566778899aabbccddeeff' + '02d8000000123403' + '737276' + 'beef'
  const bytes = new Uint8Array(Buffer.from(hex, 'hex'))
  const r = parseNotification(bytes)
  if (!r.ok) throw new Error(r.error.message)
  t.same(Buffer.from(r.value.digest).toString('hex'), '00112233445566778899aabbccddeeff')
  t.equal(r.value.version, 11)
  t.equal(r.value.uiMode, 1)
  t.equal(r.value.initiator, 'server')
  t.equal(r.value.sessionId, 0x1234)
  t.equal(r.value.sessionIdHex, '1234')
  t.equal(r.value.serverId, 'srv')
  t.equal(Buffer.from(r.value.vendorData).toString('hex'), 'beef')
  t.equal(Buffer.from(r.value.trigger).toString('hex'), '02d8000000123403737276beef')
  t.same(header({ version: 11, uiMode: 1, initiator: 1, sessionId: 0x1234, length: 3 }), bytes.subarray(16, 24))
})

t.test('every header field is read from its bits', async (t) => {
  const cases = [
    { version: 11, uiMode: 0, initiator: 0, sessionId: 1 },
    { version: 10, uiMode: 1, initiator: 1, sessionId: 0xab },
    { version: 12, uiMode: 2, initiator: 0, sessionId: 0xffff },
    { version: 0x3ff, uiMode: 3, initiator: 1, sessionId: 0x8000 },
    { version: 0, uiMode: 3, initiator: 0, sessionId: 0x0100 },
  ]
  for (const c of cases) {
    const r = parseNotification(message({ ...c, serverId: 'http://www.someDMServer.com' }))
    if (!r.ok) throw new Error(r.error.message)
    t.equal(r.value.version, c.version, `version ${c.version}`)
    t.equal(r.value.uiMode, c.uiMode, `ui-mode ${c.uiMode}`)
    t.equal(r.value.initiator, c.initiator ? 'server' : 'client')
    t.equal(r.value.sessionId, c.sessionId)
    t.equal(r.value.serverId, 'http://www.someDMServer.com')
  }
})

t.test('versions 10, 11 and 12 are all accepted and reported', async (t) => {
  for (const version of [10, 11, 12]) {
    const r = parseNotification(message({ version, serverId: 'srv' }))
    t.ok(r.ok && r.value.version === version, `version ${version}`)
  }
})

t.test('the session id takes the SyncHdr form: upper-case hex, no leading zeros', async (t) => {
  const table: [number, string][] = [
    [1, '1'],
    [0x00ab, 'AB'],
    [0x0f00, 'F00'],
    [0xffff, 'FFFF'],
  ]
  for (const [id, hex] of table) {
    const r = parseNotification(message({ sessionId: id, serverId: 'srv' }))
    t.equal(r.ok && r.value.sessionIdHex, hex, `0x${id.toString(16)}`)
  }
})

t.test('future-use bits are ignored', async (t) => {
  const r = parseNotification(message({ future: (1n << 27n) - 1n, sessionId: 7, serverId: 'srv' }))
  t.ok(r.ok)
  if (r.ok) {
    t.equal(r.value.sessionId, 7)
    t.equal(r.value.initiator, 'server')
    t.equal(r.value.serverId, 'srv')
  }
})

t.test('server id, vendor data and trigger split where the length says', async (t) => {
  const vendor = new Uint8Array([1, 2, 3, 0, 255])
  const r = parseNotification(message({ serverId: 'Ωserver', vendor }))
  if (!r.ok) throw new Error(r.error.message)
  t.equal(r.value.serverId, 'Ωserver')
  t.same([...r.value.vendorData], [...vendor])
  t.equal(r.value.trigger.length, 8 + Buffer.byteLength('Ωserver') + vendor.length)
  const noVendor = parseNotification(message({ serverId: 'x' }))
  t.equal(noVendor.ok && noVendor.value.vendorData.length, 0)
})

t.test('a parsed notification owns its bytes, even when read from a Buffer', async (t) => {
  const packet = Buffer.from(message({ serverId: 'srv', vendor: new Uint8Array([5]) }))
  const r = parseNotification(packet)
  if (!r.ok) throw new Error(r.error.message)
  packet.fill(0)
  t.equal(r.value.digest[0], 0xaa)
  t.equal(r.value.trigger[7], 3)
  t.equal(r.value.vendorData[0], 5)
  t.notOk(Buffer.isBuffer(r.value.trigger), 'plain Uint8Array')
})

t.test('the trigger is exactly what the digest covers', async (t) => {
  const password = 'srvsecret'
  const nonce = Buffer.from('nonce-1')
  const probe = message({ serverId: 'srv', sessionId: 0x42 })
  const trigger = probe.subarray(16)
  const digest = md5(`${b64md5('srv:' + password)}:${nonce.toString()}:${b64md5(trigger)}`)
  const r = parseNotification(message({ serverId: 'srv', sessionId: 0x42, digest }))
  if (!r.ok) throw new Error(r.error.message)
  t.same(Buffer.from(r.value.trigger), Buffer.from(trigger))
  t.same(Buffer.from(r.value.digest), digest)
})

t.test('malformed notifications are refused with code and offset', async (t) => {
  const longId = 'a'.repeat(200)
  const FORMAT = 'NOTIFICATION_FORMAT'
  const table: { name: string; bytes: Uint8Array; code: string; at: number; options?: { maxBytes?: number } }[] = [
    { name: 'empty', bytes: new Uint8Array(0), code: 'NOTIFICATION_FORMAT', at: 0 },
    { name: '23 bytes', bytes: message({ serverId: '' }).subarray(0, 23), code: 'NOTIFICATION_FORMAT', at: 23 },
    { name: 'length past end', bytes: message({ serverId: 'srv', length: 4 }), code: 'NOTIFICATION_FORMAT', at: 23 },
    { name: 'length 255, 1 byte id', bytes: message({ serverId: 'x', length: 255 }), code: FORMAT, at: 23 },
    { name: 'session id 0', bytes: message({ serverId: 'srv', sessionId: 0 }), code: 'NOTIFICATION_FORMAT', at: 21 },
    { name: 'empty server id', bytes: message({ serverId: '' }), code: 'NOTIFICATION_FORMAT', at: 23 },
    {
      name: 'invalid UTF-8 id',
      bytes: message({ serverId: new Uint8Array([0x73, 0xc3, 0x28]) }),
      code: 'NOTIFICATION_FORMAT',
      at: 24,
    },
    { name: 'overlong UTF-8 id', bytes: message({ serverId: new Uint8Array([0xc0, 0xaf]) }), code: FORMAT, at: 24 },
    { name: 'NUL in id', bytes: message({ serverId: 'sr\u0000v' }), code: 'NOTIFICATION_FORMAT', at: 24 },
    {
      name: 'over default max size',
      bytes: message({ serverId: 'srv', vendor: new Uint8Array(5000) }),
      code: 'TOO_LARGE',
      at: 4096,
    },
    {
      name: 'over configured max size',
      bytes: message({ serverId: longId }),
      code: 'TOO_LARGE',
      at: 100,
      options: { maxBytes: 100 },
    },
  ]
  for (const c of table) {
    const r = parseNotification(c.bytes, c.options)
    t.equal(r.ok, false, c.name)
    if (!r.ok) {
      t.equal(r.error.code, c.code, `${c.name}: code`)
      t.equal(r.error.at, c.at, `${c.name}: offset`)
    }
  }
  t.ok(parseNotification(message({ serverId: longId }), { maxBytes: 16 + 8 + 200 }).ok, 'exactly at the limit is fine')
})

t.test('build and parse round trip', async (t) => {
  const fields = {
    version: 12,
    uiMode: 3 as const,
    initiator: 'client' as const,
    sessionId: 0xbeef,
    serverId: 'http://www.someDMServer.com',
    vendorData: new Uint8Array([9, 8, 7]),
  }
  let seen: Uint8Array | undefined
  const bytes = buildNotification(fields, (trigger) => {
    seen = trigger
    return md5(trigger)
  })
  const r = parseNotification(bytes)
  if (!r.ok) throw new Error(r.error.message)
  t.match(r.value, { version: 12, uiMode: 3, initiator: 'client', sessionId: 0xbeef, sessionIdHex: 'BEEF' })
  t.equal(r.value.serverId, fields.serverId)
  t.same([...r.value.vendorData], [9, 8, 7])
  t.same(Buffer.from(r.value.trigger), Buffer.from(seen!))
  t.same(Buffer.from(r.value.digest), md5(seen!))
  // the header the builder wrote is the one the bit layout gives
  const expectedHeader = header({ version: 12, uiMode: 3, initiator: 0, sessionId: 0xbeef, length: 27 })
  t.same(Buffer.from(bytes.subarray(16, 24)), Buffer.from(expectedHeader))
})

t.test('build defaults: version 11, ui-mode 0, server-initiated, no vendor data', async (t) => {
  const r = parseNotification(buildNotification({ sessionId: 5, serverId: 'srv' }, () => new Uint8Array(16)))
  t.match(r, { ok: true, value: { version: 11, uiMode: 0, initiator: 'server', sessionIdHex: '5' } })
  t.equal(r.ok && r.value.vendorData.length, 0)
})

t.test('build refuses values that do not fit their fields', async (t) => {
  const digest = () => new Uint8Array(16)
  t.throws(() => buildNotification({ sessionId: 0x10000, serverId: 's' }, digest), RangeError)
  t.throws(() => buildNotification({ version: 1024, sessionId: 1, serverId: 's' }, digest), RangeError)
  t.throws(() => buildNotification({ sessionId: 1, serverId: 'x'.repeat(256) }, digest), RangeError)
  t.throws(() => buildNotification({ sessionId: 1, serverId: 's' }, () => new Uint8Array(15)), RangeError)
  // field-fitting but invalid values can still be built, for peers that test refusals
  const zeroSession = buildNotification({ sessionId: 0, serverId: 's' }, digest)
  t.match(parseNotification(zeroSession), { ok: false, error: { at: 21 } })
})

t.test('random bytes never throw, and what parses is consistent', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      const r = parseNotification(bytes)
      if (!r.ok) return typeof r.error.code === 'string' && typeof r.error.at === 'number'
      return (
        r.value.trigger.length === bytes.length - 16 &&
        r.value.sessionId >= 1 &&
        r.value.sessionIdHex === r.value.sessionId.toString(16).toUpperCase() &&
        24 + Buffer.byteLength(r.value.serverId) + r.value.vendorData.length === bytes.length
      )
    }),
    { numRuns: 3000 },
  )
  t.pass('3000 random inputs')
})

t.test('random well-formed notifications survive build and parse', async (t) => {
  fc.assert(
    fc.property(
      fc.record({
        version: fc.integer({ min: 0, max: 1023 }),
        uiMode: fc.constantFrom(0, 1, 2, 3) as fc.Arbitrary<0 | 1 | 2 | 3>,
        initiator: fc.constantFrom('client', 'server') as fc.Arbitrary<'client' | 'server'>,
        sessionId: fc.integer({ min: 1, max: 0xffff }),
        serverId: fc.string({ minLength: 1, maxLength: 60 }).filter((s) => !/[\u0000-\u001f\u007f]/.test(s)),
        vendorData: fc.uint8Array({ maxLength: 64 }),
      }),
      (fields) => {
        const r = parseNotification(buildNotification(fields, (trigger) => md5(trigger)))
        return (
          r.ok &&
          r.value.version === fields.version &&
          r.value.uiMode === fields.uiMode &&
          r.value.initiator === fields.initiator &&
          r.value.sessionId === fields.sessionId &&
          r.value.serverId === fields.serverId &&
          Buffer.from(r.value.vendorData).equals(Buffer.from(fields.vendorData))
        )
      },
    ),
    { numRuns: 1000 },
  )
  t.pass('1000 random notifications')
})
