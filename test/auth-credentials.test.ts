import t from 'tap'
import { basicCredential, parseBasicCredential } from '../src/auth/basic.ts'
import { constantTimeEqual } from '../src/auth/compare.ts'
import { md5Digest, verifyMd5 } from '../src/auth/md5.ts'

const enc = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'))

t.test('constantTimeEqual compares bytes and strings exactly', async (t) => {
  t.equal(constantTimeEqual('abc', 'abc'), true)
  t.equal(constantTimeEqual('abc', 'abd'), false)
  t.equal(constantTimeEqual('abc', 'abcd'), false, 'different lengths')
  t.equal(constantTimeEqual('', ''), true)
  t.equal(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true)
  t.equal(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([2, 1])), false)
  t.equal(constantTimeEqual('é', new Uint8Array([0xc3, 0xa9])), true, 'strings are UTF-8')
  t.equal(constantTimeEqual('ABC', 'abc'), false, 'case matters')
})

t.test('syncml:auth-md5 matches the OMA test vector', async (t) => {
  // OMA DM Security 1.2, 5.1.2 example: Bruce2 / OhBehave / nonce "Nonce"
  t.equal(md5Digest('Bruce2', 'OhBehave', enc('Nonce')), 'Zz6EivR3yeaaENcRN6lpAQ==')
})

t.test('verifyMd5 accepts the right digest and nothing else', async (t) => {
  const nonce = enc('Nonce')
  t.equal(verifyMd5('Zz6EivR3yeaaENcRN6lpAQ==', 'Bruce2', 'OhBehave', nonce), true)
  t.equal(verifyMd5('Zz6EivR3yeaaENcRN6lpAQ', 'Bruce2', 'OhBehave', nonce), true, 'padding left off')
  t.equal(verifyMd5('Zz6EivR3yeaa\n  ENcRN6lpAQ==', 'Bruce2', 'OhBehave', nonce), true, 'wrapped line')
  t.equal(verifyMd5('Zz6EivR3yeaaENcRN6lpAQ==', 'Bruce2', 'OhBehavf', nonce), false, 'wrong password')
  t.equal(verifyMd5('Zz6EivR3yeaaENcRN6lpAQ==', 'bruce2', 'OhBehave', nonce), false, 'wrong user')
  t.equal(verifyMd5('Zz6EivR3yeaaENcRN6lpAQ==', 'Bruce2', 'OhBehave', enc('nonce')), false, 'wrong nonce')
  t.equal(verifyMd5('Zz6EivR3yeaaENcRN6lpAA==', 'Bruce2', 'OhBehave', nonce), false, 'one bit off')
  t.equal(verifyMd5('Zz6EivR3yeaaENcRN6lp', 'Bruce2', 'OhBehave', nonce), false, 'truncated')
  t.equal(verifyMd5('Zz6E*vR3yeaaENcRN6lpAQ==', 'Bruce2', 'OhBehave', nonce), false, 'not base64')
  t.equal(verifyMd5('', 'Bruce2', 'OhBehave', nonce), false, 'empty')
})

t.test('the nonce is used as raw octets, not as its base64 text', async (t) => {
  const raw = new Uint8Array([0, 0xff, 0x10, 0x80])
  const d = md5Digest('user', 'pw', raw)
  t.equal(verifyMd5(d, 'user', 'pw', raw), true)
  t.equal(verifyMd5(d, 'user', 'pw', enc(Buffer.from(raw).toString('base64'))), false)
})

t.test('syncml:auth-basic', async (t) => {
  t.equal(basicCredential('Bruce2', 'OhBehave'), 'QnJ1Y2UyOk9oQmVoYXZl')
  t.same(parseBasicCredential('QnJ1Y2UyOk9oQmVoYXZl'), { username: 'Bruce2', password: 'OhBehave' })
  t.same(parseBasicCredential(basicCredential('user', 'pa:ss:word')), { username: 'user', password: 'pa:ss:word' })
  t.same(parseBasicCredential(basicCredential('Zoë', '')), { username: 'Zoë', password: '' })
  t.equal(parseBasicCredential(Buffer.from('nocolon').toString('base64')), undefined, 'no colon')
  t.equal(parseBasicCredential('QnJ1Y2Uy*k9o'), undefined, 'not base64')
  t.equal(parseBasicCredential(Buffer.from([0x61, 0x3a, 0xff]).toString('base64')), undefined, 'not UTF-8')
})
