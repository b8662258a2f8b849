// The test peers' own protocol arithmetic and XML, checked against spec vectors and independently computed values
// (Python hashlib/hmac, libwbxml), with no broker.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { basicCred, hmacHeader, md5Digest, nonceBytes, parseHmacHeader } from './peers/auth.ts'
import { buildAccountCommands, buildBootstrap } from './peers/bootstrap-server.ts'
import { DmServer } from './peers/dm-server.ts'
import { detectionAlert, parseServerList } from './peers/gateway.ts'
import { topicFor } from './peers/mqtt.ts'
import { alert, atomic, buildMessage, get, parseMessage, replace, type ParsedMessage } from './peers/syncml.ts'
import { parseWbxmlMessage, xmlToWbxml } from './peers/wbxml.ts'

function parsed(xml: string): ParsedMessage {
  const outcome = parseMessage(xml)
  if (!outcome.ok) throw new Error(outcome.error)
  return outcome.message
}

t.test('auth-md5 matches the OMA DM spec vector and a Python-computed one with a b64 nonce', async (t) => {
  t.equal(md5Digest('Bruce2', 'OhBehave', Buffer.from('Nonce')), 'Zz6EivR3yeaaENcRN6lpAQ==')
  t.equal(md5Digest('dev', 'devpw', nonceBytes('AAECAwQ=')), 'sKAGiuGYXklguUqvrQ2cNQ==')
  t.equal(basicCred('Bruce2', 'OhBehave'), 'QnJ1Y2UyOk9oQmVoYXZl')
})

t.test('syncml:auth-MAC header carries the Python-computed mac and reads back', async (t) => {
  const header = hmacHeader('dev', 'devpw', nonceBytes('AAECAwQ='), Buffer.from('<SyncML/>'))
  t.equal(header, 'algorithm=MD5, username="dev", mac=mP5sQpBQjoLwWI7zy7YpJg==')
  t.same(parseHmacHeader(header), { algorithm: 'MD5', username: 'dev', mac: 'mP5sQpBQjoLwWI7zy7YpJg==' })
  t.same(parseHmacHeader('username="Robert Jordan", mac=NTI2'), { algorithm: 'MD5', username: 'Robert Jordan', mac: 'NTI2' })
})

t.test('DM Notification bytes equal an independent bit-level assembly, digest per nonce choice', async (t) => {
  const serverId = 'http://dms.example.com'
  const server = new DmServer({
    brokerUrl: 'mqtt://unused',
    serverId,
    deviceId: 'IMEI:493005100592800',
    serverName: serverId,
    serverPassword: 'srv-secret',
    clientName: 'dev',
    clientPassword: 'devpw',
    serverNonce: 'AAECAwQ=',
  })
  // version 11 | ui-mode 01 | initiator 1 | 27 zero bits | session id 0x1A2B | server-id length
  const bits = '0000001011' + '01' + '1' + '0'.repeat(27) + (0x1a2b).toString(2).padStart(16, '0') + serverId.length.toString(2).padStart(8, '0')
  const header = Buffer.alloc(8)
  for (let i = 0; i < 64; i++) if (bits[i] === '1') header[i >> 3]! |= 0x80 >> (i & 7)
  t.equal(header.toString('hex'), '02d80000001a2b16')
  const expectedDigests = {
    stored: '43b43e6b040ca32dad8d5349643c3a07',
    'zero-bytes': '3db8a5531ac47023f118f27b687caf6b',
    text: 'f88da92177644261351d5652d437f421',
  } as const
  for (const [digestNonce, digest] of Object.entries(expectedDigests)) {
    const bytes = server.notificationBytes({ sessionId: 0x1a2b, uiMode: 'background', digestNonce: digestNonce as keyof typeof expectedDigests })
    t.equal(bytes.subarray(0, 16).toString('hex'), digest, `digest with the ${digestNonce} nonce`)
    t.equal(bytes.subarray(16, 24).toString('hex'), header.toString('hex'), 'header')
    t.equal(bytes.subarray(24).toString('utf8'), serverId, 'server identifier after the header')
  }
  const wrong = server.notificationBytes({ sessionId: 0x1a2b, uiMode: 'background', digestNonce: 'wrong' })
  t.not(wrong.subarray(0, 16).toString('hex'), expectedDigests.stored)
  t.equal(server.notificationBytes({ sessionId: 0x1a2b, uiMode: 'background', nonce: '' }).subarray(0, 16).toString('hex'), '66ec36f454488aea180a164ccdefe152')
  t.throws(() => server.notificationBytes({ sessionId: 0x10000 }))
})

t.test('bootstrap MAC is hex HMAC-SHA1 with the key of each SEC method', async (t) => {
  const xml = '<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr/><SyncBody><Final/></SyncBody></SyncML>'
  const secrets = { networkId: '310150123456789', userPin: '1234' }
  const expected = {
    NETWORKID: '90fb95697c4bcc946e7c33cddc32ca3b93138752',
    USERPIN: '7565e407494a267d8460fd5da90fd63ed00e9824',
    USERPIN_NETWORKID: 'cc101bc291ab855f315e3aa58354675a9c974ae4',
  } as const
  for (const [sec, mac] of Object.entries(expected)) {
    const built = buildBootstrap({ deviceId: 'dev', xml, encoding: 'xml', sec: sec as keyof typeof expected, ...secrets })
    t.equal(built.mac, mac, sec)
    t.same(built.userProperties, { SEC: sec, MAC: mac })
    t.equal(built.contentType, 'application/vnd.syncml.dm+xml')
  }
  t.throws(() => buildBootstrap({ deviceId: 'dev', xml, encoding: 'xml', sec: 'USERPIN', networkId: 'x' }), /userPin/)
  t.equal(buildBootstrap({ deviceId: 'dev', xml, encoding: 'xml', sec: 'USERPIN', userPin: '1', macOverride: '00' }).mac, '00')
})

t.test('topics encode the LocURI as one level', async (t) => {
  t.equal(topicFor('http://dms.example.com/a+b#c', 'dm'), 'omadm/v1/http%3A%2F%2Fdms.example.com%2Fa%2Bb%23c/dm')
  t.equal(topicFor('IMEI:1', 'bootstrap', 'x/y'), 'x/y/IMEI%3A1/bootstrap')
})

t.test('a built message reads back: header, Cred, commands, escaping, nesting', async (t) => {
  const { xml, sent } = buildMessage(
    { sessionId: '1A', msgId: '2', target: 'IMEI:1', source: 'http://s', locName: 'srv', cred: { type: 'syncml:auth-md5', data: 'abc=' } },
    [get('./DevInfo/Mod'), atomic(replace('./A', 'x < y & "z"'), replace('./B', { cdata: 'a]]>b &lt;' }))],
  )
  t.same(sent.map((s) => s.cmdId), ['1', '2', '3', '4'])
  const m = parsed(xml)
  t.match(m.hdr, { sessionId: '1A', msgId: '2', target: 'IMEI:1', source: 'http://s', locName: 'srv', verDTD: '1.2', verProto: 'DM/1.2' })
  t.same(m.hdr.cred, { type: 'syncml:auth-md5', format: 'b64', data: 'abc=' })
  t.equal(m.final, true)
  t.equal(m.commands[0]!.name, 'Get')
  t.equal(m.commands[0]!.items[0]!.target, './DevInfo/Mod')
  const inner = m.commands[1]!.children!
  t.same(inner.map((c) => c.cmdId), ['3', '4'])
  t.equal(inner[0]!.items[0]!.data, 'x < y & "z"', 'escaped text decodes back')
  t.equal(inner[1]!.items[0]!.data, 'a]]>b &lt;', 'CDATA stays literal, even with ]]> and an entity inside')
  t.equal(inner[1]!.items[0]!.meta.format, 'chr')
})

t.test('the reader tolerates how a device may write: whitespace, prefixes, entities, nested data', async (t) => {
  const m = parsed(`<?xml version="1.0"?>
<SyncML xmlns='SYNCML:SYNCML1.2'>
  <SyncHdr>
    <VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto>
    <SessionID> 5 </SessionID><MsgID>1</MsgID>
    <Target><LocURI>http://s</LocURI></Target>
    <Source><LocURI>mac:01-ab</LocURI><LocName>dev</LocName></Source>
  </SyncHdr>
  <SyncBody>
    <Status><CmdID>1</CmdID><MsgRef>1</MsgRef><CmdRef>0</CmdRef><Cmd>SyncHdr</Cmd>
      <Chal><Meta><Type xmlns="syncml:metinf">syncml:auth-md5</Type><Format xmlns="syncml:metinf">b64</Format>
      <NextNonce xmlns="syncml:metinf">QUJD</NextNonce></Meta></Chal><Data>212</Data></Status>
    <Results><CmdID>2</CmdID><MsgRef>1</MsgRef><CmdRef>3</CmdRef>
      <Meta><Format xmlns="syncml:metinf">chr</Format></Meta>
      <Item><Source><LocURI>./DevInfo/Mod</LocURI></Source><Data>A&amp;B &#x41;&#66;</Data></Item></Results>
    <Alert><CmdID>3</CmdID><Data>1226</Data><Item>
      <Meta><Type xmlns="syncml:metinf">
        urn:oma:gwmo:1.0:BootstrappedDMSList
      </Type><Format xmlns="syncml:metinf">text/plain</Format></Meta>
      <Data><ServerList><ServerInfo><ID>http://a</ID></ServerInfo></ServerList></Data></Item></Alert>
    <Final/>
  </SyncBody>
</SyncML>`)
  t.equal(m.hdr.sessionId, '5')
  t.equal(m.hdr.locName, 'dev')
  t.same(m.commands.map((c) => c.name), ['Status', 'Results', 'Alert'])
  t.match(m.commands[0], { cmdRef: '0', cmd: 'SyncHdr', data: '212', chal: { type: 'syncml:auth-md5', format: 'b64', nextNonce: 'QUJD' } })
  t.equal(m.commands[1]!.items[0]!.data, 'A&B AB')
  t.equal(m.commands[1]!.items[0]!.meta.format, 'chr', 'command-level Meta applies to its items')
  const ga = m.commands[2]!.items[0]!
  t.equal(ga.meta.type, 'urn:oma:gwmo:1.0:BootstrappedDMSList')
  t.same(parseServerList(ga.data!), ['http://a'])
  t.equal(parseMessage('<Other/>').ok, false)
  t.equal(parseMessage('<SyncML><SyncBody/></SyncML>').ok, false)
  t.equal(parseMessage('not xml').ok, false)
})

t.test('Device Detection Alert forms: escaped item, CDATA item, inline CDATA', async (t) => {
  const hdr = { sessionId: '1', msgId: '1', target: 'dev', source: 'http://gw.local' }
  const d = { gwAddress: '2002::9da6:e219 & <x>', share: true }
  const escaped = buildMessage(hdr, [detectionAlert({ ...d, form: 'item-escaped' })]).xml
  t.match(escaped, '<Item><Data>&lt;GwAddress&gt;2002::9da6:e219 &amp;amp; &amp;lt;x&amp;gt;&lt;/GwAddress&gt;&lt;Share&gt;true&lt;/Share&gt;</Data></Item>')
  const inCdata = buildMessage(hdr, [detectionAlert({ ...d, form: 'item-cdata', addrElement: 'GwAddr', shareText: 'False' })]).xml
  t.match(inCdata, '<Item><Data><![CDATA[<GwAddr>2002::9da6:e219 &amp; &lt;x&gt;</GwAddr><Share>False</Share>]]></Data></Item>')
  const inline = buildMessage(hdr, [detectionAlert({ ...d, form: 'inline-cdata' })]).xml
  t.match(inline, '<Alert><CmdID>1</CmdID><Data>1230</Data><![CDATA[<GwAddress>')
  t.notMatch(inline, '<Item>')
  // Each form reads back to the same payload.
  const payloads = [escaped, inCdata, inline].map((x) => {
    const a = parsed(x).commands[0]!
    return a.items[0]?.data ?? a.inline
  })
  t.equal(payloads[0], '<GwAddress>2002::9da6:e219 &amp; &lt;x&gt;</GwAddress><Share>true</Share>')
  t.equal(payloads[2], payloads[0])
  t.equal(parsed(buildMessage(hdr, [alert('1223')]).xml).commands[0]!.data, '1223')
})

t.test('gateway account commands create every DMAcc node, interior nodes first', async (t) => {
  const commands = buildAccountCommands({
    id: 'gw',
    serverId: 'http://gw.local',
    addr: 'mqtt://127.0.0.1:1883',
    clientName: 'dev',
    clientPassword: 'devpw',
    serverName: 'gw',
    serverPassword: 'gwpw',
    serverNonce: 'AAAA',
    role: 'gateway',
  })
  const m = parsed(buildMessage({ sessionId: '0', msgId: '1', target: 'dev', source: 'bootstrap' }, commands).xml)
  t.ok(m.commands.every((c) => c.name === 'Add'))
  const byUri = new Map(m.commands.map((c) => [c.items[0]!.target!, c.items[0]!]))
  t.equal(byUri.get('./DMAcc/gw')?.meta.format, 'node')
  t.equal(byUri.get('./DMAcc/gw/AppID')?.data, 'w7')
  t.equal(byUri.get('./DMAcc/gw/ServerID')?.data, 'http://gw.local')
  t.equal(byUri.get('./DMAcc/gw/AppAddr/1/Addr')?.data, 'mqtt://127.0.0.1:1883')
  t.equal(byUri.get('./DMAcc/gw/AppAuth/1/AAuthLevel')?.data, 'CLCRED')
  t.equal(byUri.get('./DMAcc/gw/AppAuth/2/AAuthLevel')?.data, 'SRVCRED')
  t.equal(byUri.get('./DMAcc/gw/AppAuth/2/AAuthSecret')?.data, 'gwpw')
  t.equal(byUri.get('./DMAcc/gw/AppAuth/2/AAuthData')?.meta.format, 'b64')
  t.equal(byUri.get('./DMAcc/gw/Ext/GwMO/Role')?.data, 'gateway')
  const uris = [...byUri.keys()]
  for (const uri of uris) {
    const parent = uri.slice(0, uri.lastIndexOf('/'))
    if (parent !== './DMAcc') t.ok(uris.indexOf(parent) < uris.indexOf(uri), `${parent} before ${uri}`)
  }
})

t.test('peer WBXML decodes with libwbxml to the same message, and reads back itself', async (t) => {
  const { xml } = buildMessage(
    { sessionId: '0', msgId: '1', target: 'IMEI:1', source: 'bootstrap', cred: { type: 'syncml:auth-md5', data: 'abc=' } },
    [replace('./DevDetail/Ext/Note', 'a & b', 'chr', 'text/plain'), get('./DevInfo/Mod')],
  )
  const bytes = xmlToWbxml(xml)
  const back = parseWbxmlMessage(bytes)
  t.ok(back.ok)
  if (back.ok) t.same(back.message, parsed(xml))
  const dir = mkdtempSync(join(tmpdir(), 'peers-wbxml-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'in.wbxml'), bytes)
  execFileSync('wbxml2xml', ['-m', '0', '-o', join(dir, 'out.xml'), join(dir, 'in.wbxml')], { stdio: 'pipe' })
  const viaLibwbxml = parsed(readFileSync(join(dir, 'out.xml'), 'utf8'))
  t.same(viaLibwbxml, parsed(xml))
})
