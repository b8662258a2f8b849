// An account's Ext/GwmoAgent leaves (binding.md §10): validated at commit, read into the account view, the client
// key a secret no Get reveals, and the Binding a leaf no party changes in its own account.
import t from 'tap'
import { accountNodes, addAccount, chr, standardTree } from './fixtures/tree/trees.ts'
import { accountTls, findAccount } from '../src/tree/accounts.ts'
import type { NodeValue } from '../src/tree/types.ts'

const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
const KEY = '-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n'
const ext = (leaves: Record<string, string>): [string, NodeValue][] => Object.entries(leaves).map(([leaf, value]) => [`Ext/GwmoAgent/${leaf}`, chr(value)])

function withLeaves(leaves: Record<string, string>, addr = 'https://dms.example.com/dm') {
  const tree = standardTree()
  const status = addAccount(tree, { x: 'acc', serverId: 'srv1', addr, extra: ext(leaves) })
  return { tree, status }
}

t.test('an HTTP account: its URL, poll period, encoding and TLS material are read; MQTT is the default', async (t) => {
  const { tree, status } = withLeaves({ Binding: 'http', PollSeconds: '300', Encoding: 'wbxml', CA: CERT, ClientCert: CERT, ClientKey: KEY })
  t.equal(status, 200)
  const account = findAccount(tree, 'srv1')!
  t.match(account, { httpUrl: 'https://dms.example.com/dm', pollSeconds: 300, encoding: 'wbxml' })
  t.same(accountTls(tree, account), { ca: CERT, cert: CERT, key: KEY }, 'the device reads its key')
  t.equal(JSON.stringify(account).includes('PRIVATE KEY'), false, 'the account view itself holds no key')
  t.equal(tree.get('./DMAcc/acc/Ext/GwmoAgent/ClientKey', 'device').status, 405, 'no Get of the key, not even the device\'s')
  t.equal(tree.get('./DMAcc/acc/Ext/GwmoAgent/ClientKey', { serverId: 'srv1' }).status, 405, 'nor its own server\'s')

  const plain = withLeaves({}, 'http://dms.example.com/dm')
  t.equal(plain.status, 200)
  t.equal(findAccount(plain.tree, 'srv1')?.httpUrl, undefined, 'an http:// Addr alone does not switch to HTTP')
  const mqtt = withLeaves({ Binding: 'mqtt', PollSeconds: '0' })
  t.equal(mqtt.status, 200)
  t.match(findAccount(mqtt.tree, 'srv1'), { httpUrl: undefined, pollSeconds: undefined }, 'Binding mqtt, and PollSeconds 0: no polling')
})

t.test('leaves that cannot work are refused at commit, each naming its path', async (t) => {
  const rows: [string, Record<string, string>, string | undefined, string][] = [
    ['an unknown binding', { Binding: 'coap' }, undefined, "./DMAcc/acc/Ext/GwmoAgent/Binding: must be mqtt or http, not 'coap'"],
    ['http without an http(s) Addr', { Binding: 'http' }, 'mqtt://broker.example/acc', './DMAcc/acc/AppAddr: Binding http needs an http:// or https:// Addr'],
    ['a poll period that is no number', { PollSeconds: 'hourly' }, undefined, "./DMAcc/acc/Ext/GwmoAgent/PollSeconds: must be a number of seconds, not 'hourly'"],
    ['an unknown encoding', { Encoding: 'json' }, undefined, "./DMAcc/acc/Ext/GwmoAgent/Encoding: must be xml or wbxml, not 'json'"],
    ['a CA that is no certificate', { CA: 'trust me' }, undefined, './DMAcc/acc/Ext/GwmoAgent/CA: must be a PEM certificate'],
    ['a key that is no key', { ClientCert: CERT, ClientKey: 'secret' }, undefined, './DMAcc/acc/Ext/GwmoAgent/ClientKey: must be a PEM private key'],
    ['a certificate without its key', { ClientCert: CERT }, undefined, './DMAcc/acc/Ext/GwmoAgent: ClientCert and ClientKey go together'],
  ]
  for (const [name, leaves, addr, message] of rows) {
    const tree = standardTree()
    const tx = tree.begin()
    const spec = { x: 'acc', serverId: 'srv1', ...(addr !== undefined && { addr }), extra: ext(leaves) }
    for (const [rel, value] of accountNodes(spec)) tx.add(`./DMAcc/acc/${rel}`, value, 'device')
    t.same(tx.commit(), { ok: false, failure: { status: 500, messages: [message] } }, name)
    t.equal(findAccount(tree, 'srv1'), undefined, `${name}: nothing stored`)
    t.notOk(message.includes('secret'), `${name}: the refusal does not quote a key`)
  }
})

t.test('a server does not change the binding of its own account; its CA it may rotate where its ACL lets it', async (t) => {
  const { tree } = withLeaves({ Binding: 'http', CA: CERT })
  const server = { serverId: 'srv1' }
  const tx = tree.begin()
  t.equal(tx.replace('./DMAcc/acc/Ext/GwmoAgent/Binding', chr('mqtt'), server), 425, 'Replace of its Binding refused')
  t.equal(tx.delete('./DMAcc/acc/Ext/GwmoAgent', server), 425, 'nor can it delete the node holding it')
  tx.rollback()
  t.equal(findAccount(tree, 'srv1')?.httpUrl, 'https://dms.example.com/dm', 'still reached over HTTP')
})
