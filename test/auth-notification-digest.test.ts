import { createHash } from 'node:crypto'
import t from 'tap'
import { notificationDigest, verifyNotificationDigest } from '../src/auth/notification-digest.ts'
import { buildNotification, type Notification, parseNotification } from '../src/codec/notification.ts'

const md5 = (b: Uint8Array | string) => createHash('md5').update(b).digest()

// binding.md section 6: H(B64(H(server-identifier:password)):nonce:B64(H(trigger))), written out independently
function expectedDigest(serverId: string, password: string, nonce: Uint8Array, trigger: Uint8Array): Buffer {
  const inner = md5(`${serverId}:${password}`).toString('base64')
  return md5(Buffer.concat([Buffer.from(inner + ':'), nonce, Buffer.from(':' + md5(trigger).toString('base64'))]))
}

const serverId = 'http://www.someDMServer.com'
const password = 'srvpwd'
const storedNonce = new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x01])
const zeroBytes = new Uint8Array(4)
const zeroText = new Uint8Array(Buffer.from('0x00000000'))

function notification(nonce: Uint8Array, pwd = password): Notification {
  const bytes = buildNotification({ sessionId: 0x2a, serverId, vendorData: new Uint8Array([1, 2]) }, (trigger) =>
    expectedDigest(serverId, pwd, nonce, trigger),
  )
  const r = parseNotification(bytes)
  if (!r.ok) throw new Error(r.error.message)
  return r.value
}

t.test('notificationDigest follows the formula and is 16 raw bytes', async (t) => {
  const n = notification(storedNonce)
  const d = notificationDigest(serverId, password, storedNonce, n.trigger)
  t.equal(d.length, 16)
  t.same(Buffer.from(d), expectedDigest(serverId, password, storedNonce, n.trigger))
  t.same(Buffer.from(d), Buffer.from(n.digest))
})

const WITH_DEFAULT = { defaultNonce: true }
const STORED_ONLY = { defaultNonce: false }

t.test('the stored nonce is tried first', async (t) => {
  t.same(verifyNotificationDigest(notification(storedNonce), password, storedNonce, WITH_DEFAULT), { ok: true, nonce: 'stored' })
  t.same(verifyNotificationDigest(notification(storedNonce), password, storedNonce, STORED_ONLY), { ok: true, nonce: 'stored' })
})

t.test('the default nonce is accepted as four zero bytes, when asked for', async (t) => {
  const n = notification(zeroBytes)
  t.same(verifyNotificationDigest(n, password, storedNonce, WITH_DEFAULT), { ok: true, nonce: 'default-bytes' })
  t.same(verifyNotificationDigest(n, password, undefined, WITH_DEFAULT), { ok: true, nonce: 'default-bytes' }, 'with no stored nonce')
})

t.test('the default nonce is accepted as the text 0x00000000 (libdmclient), when asked for', async (t) => {
  const n = notification(zeroText)
  t.same(verifyNotificationDigest(n, password, storedNonce, WITH_DEFAULT), { ok: true, nonce: 'default-text' })
  t.same(verifyNotificationDigest(n, password, undefined, WITH_DEFAULT), { ok: true, nonce: 'default-text' }, 'with no stored nonce')
})

// binding.md §6: the default-nonce retry is the caller's choice (only for a server out of step), never implied.
t.test('without the default nonce asked for, neither form of it verifies', async (t) => {
  for (const nonce of [zeroBytes, zeroText]) {
    t.same(verifyNotificationDigest(notification(nonce), password, storedNonce, STORED_ONLY), { ok: false })
    t.same(verifyNotificationDigest(notification(nonce), password, undefined, STORED_ONLY), { ok: false })
  }
})

t.test('a wrong password fails with every nonce', async (t) => {
  for (const nonce of [storedNonce, zeroBytes, zeroText]) {
    t.same(verifyNotificationDigest(notification(nonce), 'other', storedNonce, WITH_DEFAULT), { ok: false })
  }
})

t.test('a digest made with another nonce fails', async (t) => {
  t.same(verifyNotificationDigest(notification(new Uint8Array([1, 2, 3])), password, storedNonce, WITH_DEFAULT), { ok: false })
  t.same(verifyNotificationDigest(notification(storedNonce), password, undefined, WITH_DEFAULT), { ok: false }, 'stored nonce not given')
})

t.test('a tampered trigger fails', async (t) => {
  const n = notification(storedNonce)
  const trigger = n.trigger.slice()
  trigger[trigger.length - 1] ^= 0x01
  t.same(verifyNotificationDigest({ ...n, trigger }, password, storedNonce, WITH_DEFAULT), { ok: false }, 'vendor byte flipped')
  const otherServer = verifyNotificationDigest({ ...n, serverId: 'http://evil.example' }, password, storedNonce, WITH_DEFAULT)
  t.same(otherServer, { ok: false }, 'other server id')
  const digest = n.digest.slice()
  digest[0] ^= 0x80
  t.same(verifyNotificationDigest({ ...n, digest }, password, storedNonce, WITH_DEFAULT), { ok: false }, 'digest bit flipped')
})
