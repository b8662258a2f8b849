// The DM Server peer over a real broker, driven by a scripted device: sessions, credentials and nonces, the
// 407 challenge mode, duplicates, pushed sessions, notifications, syncml:auth-MAC and WBXML.
import t from 'tap'
import { startMosquitto } from './helpers/mosquitto.ts'
import { hmacHeader, hmacMac, md5Digest, nonceBytes, parseHmacHeader } from './peers/auth.ts'
import { startDmServer, type DmServer, type DmServerOptions } from './peers/dm-server.ts'
import { ScriptedDevice } from './peers/scripted-device.ts'
import { resultFor, statusFor } from './peers/session-record.ts'
import { alert, buildMessage, get, replace, type OutCommand, type ParsedMessage } from './peers/syncml.ts'
import { xmlToWbxml } from './peers/wbxml.ts'

const DEVICE = 'IMEI:493005100592800'
const SERVER = 'http://dms.example.com'
const CREDS = { serverName: 'dms', serverPassword: 'srv-secret', clientName: 'dev', clientPassword: 'dev-secret' }

const broker = await startMosquitto()
t.teardown(() => broker.stop())

async function setup(t: { teardown(fn: () => unknown): void }, options: Partial<DmServerOptions> = {}): Promise<{ server: DmServer; device: ScriptedDevice }> {
  const server = await startDmServer({ brokerUrl: broker.url, serverId: SERVER, deviceId: DEVICE, ...CREDS, ...options })
  const device = await ScriptedDevice.start(broker.url, DEVICE)
  t.teardown(async () => {
    await server.stop()
    await device.stop()
  })
  return { server, device }
}

/** Package 1 as a device writes it: Alert, DevInfo, optional extra commands, md5 Cred with `nonce`. */
function package1(sessionId: string, msgId: string, nonce: string | undefined, extra: OutCommand[] = [], code = '1201'): string {
  const cred = nonce === undefined ? undefined : { type: 'syncml:auth-md5', data: md5Digest(CREDS.clientName, CREDS.clientPassword, nonceBytes(nonce)) }
  return buildMessage({ sessionId, msgId, target: SERVER, source: DEVICE, locName: CREDS.clientName, cred }, [
    alert(code),
    { name: 'Replace', items: [{ source: './DevInfo/Mod', data: 'Pi4' }, { source: './DevInfo/DevId', data: DEVICE }] },
    ...extra,
  ]).xml
}

function hdrStatus(m: ParsedMessage) {
  return m.commands.find((c) => c.name === 'Status' && c.cmdRef === '0')
}

t.test('a client-initiated session: 212 + Chal, scripted commands, results recorded, nonces rotated', async (t) => {
  const { server, device } = await setup(t)
  server.queueSession([get('./DevInfo/Mod'), replace('./Vendor/Color', 'blue')])
  await device.send(SERVER, package1('1', '1', ''))
  const { message: p2, delivery } = await device.nextMessage()
  t.equal(delivery.topic, 'omadm/v1/IMEI%3A493005100592800/dm')
  t.equal(delivery.contentType, 'application/vnd.syncml.dm+xml')
  const hdr = hdrStatus(p2)!
  t.equal(hdr.data, '212')
  t.same(hdr.targetRefs, [SERVER])
  t.same(hdr.sourceRefs, [DEVICE])
  const clientNonce = hdr.chal?.nextNonce
  t.ok(clientNonce, 'a fresh nonce for the next session')
  t.equal(p2.hdr.cred?.data, md5Digest('dms', 'srv-secret', new Uint8Array(0)), 'server Cred with the factory nonce')
  t.equal(p2.hdr.locName, 'dms')
  t.same(
    p2.commands.filter((c) => c.name === 'Status').map((c) => [c.cmd, c.data]),
    [['SyncHdr', '212'], ['Alert', '200'], ['Replace', '200']],
  )
  const getCmd = p2.commands.find((c) => c.name === 'Get')!
  const replaceCmd = p2.commands.find((c) => c.name === 'Replace')!
  t.equal(replaceCmd.items[0]!.data, 'blue')

  // binding.md §6: every message of the device carries its Cred, made with the nonce of the server's last one.
  const devCred = (nonce: string) => ({ type: 'syncml:auth-md5', data: md5Digest(CREDS.clientName, CREDS.clientPassword, nonceBytes(nonce)) })
  const p3 = buildMessage({ sessionId: '1', msgId: '2', target: SERVER, source: DEVICE, locName: CREDS.clientName, cred: devCred(clientNonce!) }, [
    { name: 'Status', msgRef: p2.hdr.msgId, cmdRef: '0', cmd: 'SyncHdr', data: '212', chal: { type: 'syncml:auth-md5', format: 'b64', nextNonce: 'RGV2Tm9uY2U=' } },
    { name: 'Status', msgRef: p2.hdr.msgId, cmdRef: getCmd.cmdId, cmd: 'Get', data: '200' },
    { name: 'Status', msgRef: p2.hdr.msgId, cmdRef: replaceCmd.cmdId, cmd: 'Replace', data: '200' },
    { name: 'Results', msgRef: p2.hdr.msgId, cmdRef: getCmd.cmdId, items: [{ source: './DevInfo/Mod', data: 'Pi4' }] },
  ]).xml
  await device.send(SERVER, p3)
  const { message: p4 } = await device.nextMessage()
  t.same(p4.commands.map((c) => `${c.name} ${c.cmd} ${c.data}`), ['Status SyncHdr 212', 'Status Results 200'])
  t.equal(p4.hdr.cred?.data, md5Digest('dms', 'srv-secret', nonceBytes('RGV2Tm9uY2U=')), 'the server\'s Cred in every message, with the device\'s last nonce')
  const p4Nonce = hdrStatus(p4)?.chal?.nextNonce
  t.ok(p4Nonce, 'and a nonce for the device\'s next message in every answer')
  t.ok(p4.final)

  const s = await server.waitForSession((x) => x.sessionId === '1' && x.closed)
  t.equal(s.initiation, '1201')
  t.equal(s.origin, 'device')
  t.ok(s.deviceAuthenticated)
  t.ok(s.partyAccepted)
  t.equal(statusFor(s, './DevInfo/Mod'), '200')
  t.equal(statusFor(s, './Vendor/Color'), '200')
  t.equal(resultFor(s, './DevInfo/Mod'), 'Pi4')
  t.equal(s.devInfo['./DevInfo/Mod'], 'Pi4')
  t.same(s.hdrStatuses, ['212'])
  t.equal(server.clientNonce, p4Nonce, 'the last nonce given to the device serves next time')
  t.equal(server.serverNonce, 'RGV2Tm9uY2U=', 'the nonce the device gave us serves next time')
})

t.test('a scripted plan of two turns, the second decided from the first one\'s results', async (t) => {
  const { server, device } = await setup(t)
  server.script(() => [[get('./DevInfo/Mod')], (s) => [replace('./Vendor/Model', resultFor(s, './DevInfo/Mod') ?? '?')]])
  await device.send(SERVER, package1('11', '1', ''))
  const { message: p2 } = await device.nextMessage()
  const getCmd = p2.commands.find((c) => c.name === 'Get')!
  const cred = (m: ParsedMessage) => ({ type: 'syncml:auth-md5', data: md5Digest(CREDS.clientName, CREDS.clientPassword, nonceBytes(hdrStatus(m)!.chal!.nextNonce!)) })
  await device.send(
    SERVER,
    buildMessage({ sessionId: '11', msgId: '2', target: SERVER, source: DEVICE, locName: CREDS.clientName, cred: cred(p2) }, [
      { name: 'Status', msgRef: '1', cmdRef: '0', cmd: 'SyncHdr', data: '212' },
      { name: 'Status', msgRef: '1', cmdRef: getCmd.cmdId, cmd: 'Get', data: '200' },
      { name: 'Results', msgRef: '1', cmdRef: getCmd.cmdId, items: [{ source: './DevInfo/Mod', data: 'Pi4' }] },
    ]).xml,
  )
  const { message: p4 } = await device.nextMessage()
  const replaceCmd = p4.commands.find((c) => c.name === 'Replace')!
  t.equal(replaceCmd.items[0]!.data, 'Pi4')
  await device.send(
    SERVER,
    buildMessage({ sessionId: '11', msgId: '3', target: SERVER, source: DEVICE, locName: CREDS.clientName, cred: cred(p4) }, [
      { name: 'Status', msgRef: '2', cmdRef: replaceCmd.cmdId, cmd: 'Replace', data: '200' },
    ]).xml,
  )
  const s = await server.waitForSession((x) => x.sessionId === '11' && x.closed)
  t.equal(s.turn, 2)
  t.equal(s.sent.length, 2, 'a message of Statuses alone gets no answer')
  t.equal(statusFor(s, './Vendor/Model'), '200')
  t.ok(await device.quietFor(300))
})

t.test('wrong and missing credentials get 401/407 + Chal and nothing else; the resend with the new nonce passes', async (t) => {
  const { server, device } = await setup(t, { clientNonce: 'AAAA' })
  await device.send(SERVER, package1('2', '1', 'QkFE', [alert('1226')]))
  const { message: m1 } = await device.nextMessage()
  t.equal(m1.commands.length, 1, 'only the Status for the SyncHdr')
  t.equal(hdrStatus(m1)!.data, '401')
  const nonce1 = hdrStatus(m1)!.chal!.nextNonce!
  t.match(hdrStatus(m1)!.chal, { type: 'syncml:auth-md5', format: 'b64' })

  await device.send(SERVER, package1('2', '2', undefined))
  const { message: m2 } = await device.nextMessage()
  t.equal(hdrStatus(m2)!.data, '407')
  const nonce2 = hdrStatus(m2)!.chal!.nextNonce!
  t.not(nonce2, nonce1)

  await device.send(SERVER, package1('2', '3', nonce2))
  const { message: m3 } = await device.nextMessage()
  t.equal(hdrStatus(m3)!.data, '212')
  const s = await server.waitForSession((x) => x.sessionId === '2' && x.closed)
  t.equal(s.deviceAuthFailures, 2)
  t.ok(s.deviceAuthenticated)
  t.same(s.genericAlerts, [], 'nothing from an unauthenticated message counts')
})

t.test('407 challenge mode answers the first Package 1 whatever it carries', async (t) => {
  const { server, device } = await setup(t, { challenge407: 'once' })
  await device.send(SERVER, package1('3', '1', ''))
  const { message: m1 } = await device.nextMessage()
  t.equal(hdrStatus(m1)!.data, '407')
  await device.send(SERVER, package1('3', '2', hdrStatus(m1)!.chal!.nextNonce!))
  const { message: m2 } = await device.nextMessage()
  t.equal(hdrStatus(m2)!.data, '212')
  const next = server.clientNonce
  await device.send(SERVER, package1('4', '1', next))
  t.equal(hdrStatus((await device.nextMessage()).message)!.data, '212', 'once: the next session is not challenged')
})

t.test('Generic Alerts are recorded and answered with the configured status; a duplicate is answered again', async (t) => {
  const { server, device } = await setup(t, { genericAlertStatus: (a) => (a.type.endsWith('Unknown') ? '415' : '202') })
  const generic = (type: string, data: string): OutCommand => ({
    name: 'Alert',
    data: '1226',
    items: [{ source: DEVICE, target: SERVER, meta: { type, format: 'text/plain' }, data: { cdata: data } }],
  })
  const p1 = package1('5', '1', '', [generic('urn:oma:gwmo:1.0:LocationUpdate', '<LocationUpdate><DevAddress>10.0.0.7</DevAddress></LocationUpdate>'), generic('x:Unknown', 'z')])
  await device.send(SERVER, p1)
  const first = await device.nextMessage()
  t.same(first.message.commands.filter((c) => c.cmd === 'Alert').map((c) => c.data), ['200', '202', '415'])
  const alertSeen = await server.waitForGenericAlert('urn:oma:gwmo:1.0:LocationUpdate')
  t.match(alertSeen, { format: 'text/plain', source: DEVICE, target: SERVER, data: '<LocationUpdate><DevAddress>10.0.0.7</DevAddress></LocationUpdate>' })
  await device.send(SERVER, p1)
  const again = await device.nextMessage()
  t.equal(again.delivery.payload.toString(), first.delivery.payload.toString(), 'the same answer, byte for byte')
  const s = await server.waitForSession((x) => x.sessionId === '5' && x.closed)
  t.equal(s.duplicates, 1)
  t.equal(s.genericAlerts.length, 2, 'recorded once')
  t.equal(server.sessions.filter((x) => x.sessionId === '5').length, 1)
})

t.test('a DM Notification reaches the device topic or the one given, with the stored nonce digest', async (t) => {
  const { server, device } = await setup(t, { serverNonce: 'AAECAwQ=' })
  const bytes = await server.sendNotification({ sessionId: 0x1a2b })
  const d = await device.next()
  t.equal(d.channel, 'notification')
  t.equal(d.contentType, 'application/vnd.syncml.notification')
  t.same(d.payload, bytes)
  t.equal(bytes.subarray(16, 24).toString('hex'), '02c80000001a2b16', 'version 11, server-initiated, session 1A2B')
  await server.sendNotification({ sessionId: 7, via: 'omadm/v1/IMEI%3A493005100592800/dm', digestNonce: 'text' })
  t.equal((await device.next()).channel, 'dm')
})

t.test('a pushed session carries Cred; the device answers as to Package 2 and the server closes it', async (t) => {
  const { server, device } = await setup(t, { serverNonce: 'AAECAwQ=', clientNonce: 'QUJD' })
  const pushed = await server.pushSession([get('./DevDetail/SwV')])
  const { message } = await device.nextMessage()
  t.equal(message.hdr.sessionId, pushed.sessionId)
  t.match(message.hdr.sessionId, /^[0-9A-F]{1,4}$/)
  t.equal(message.hdr.cred?.data, md5Digest('dms', 'srv-secret', nonceBytes('AAECAwQ=')))
  const getCmd = message.commands.find((c) => c.name === 'Get')!
  const reply = buildMessage(
    { sessionId: pushed.sessionId, msgId: '1', target: SERVER, source: DEVICE, cred: { type: 'syncml:auth-md5', data: md5Digest('dev', 'dev-secret', nonceBytes('QUJD')) } },
    [
      { name: 'Status', msgRef: '1', cmdRef: '0', cmd: 'SyncHdr', data: '212' },
      { name: 'Status', msgRef: '1', cmdRef: getCmd.cmdId, cmd: 'Get', data: '200' },
      { name: 'Results', msgRef: '1', cmdRef: getCmd.cmdId, items: [{ source: './DevDetail/SwV', data: '1.0' }] },
    ],
  ).xml
  await device.send(SERVER, reply)
  const s = await server.waitForSession((x) => x.sessionId === pushed.sessionId && x.closed)
  t.equal(s.origin, 'push')
  t.ok(s.deviceAuthenticated)
  t.equal(resultFor(s, './DevDetail/SwV'), '1.0')
})

t.test('a device that rejects our Cred gets the batch again with its new nonce', async (t) => {
  const { server, device } = await setup(t, { clientNonce: 'QUJD' })
  const pushed = await server.pushSession([get('./DevInfo/Lang')])
  await device.nextMessage()
  const cred = { type: 'syncml:auth-md5', data: md5Digest('dev', 'dev-secret', nonceBytes('QUJD')) }
  await device.send(
    SERVER,
    buildMessage({ sessionId: pushed.sessionId, msgId: '1', target: SERVER, source: DEVICE, cred }, [
      { name: 'Status', msgRef: '1', cmdRef: '0', cmd: 'SyncHdr', data: '401', chal: { type: 'syncml:auth-md5', format: 'b64', nextNonce: 'TmV3' } },
    ]).xml,
  )
  const { message } = await device.nextMessage()
  t.equal(message.hdr.cred?.data, md5Digest('dms', 'srv-secret', nonceBytes('TmV3')))
  t.ok(message.commands.some((c) => c.name === 'Get' && c.items[0]!.target === './DevInfo/Lang'))
  t.equal(server.serverNonce, 'TmV3')
})

t.test('syncml:auth-MAC: the device MAC is checked per message and ours goes in x-syncml-hmac', async (t) => {
  const { server, device } = await setup(t, { authType: 'hmac', clientNonce: 'QUJD', serverNonce: 'REVG' })
  server.queueSession([get('./DevInfo/Man')])
  const body = package1('6', '1', undefined)
  await device.send(SERVER, body, { 'x-syncml-hmac': hmacHeader('dev', 'dev-secret', nonceBytes('QUJD'), Buffer.from(body)) })
  const { message, delivery } = await device.nextMessage()
  const hdr = hdrStatus(message)!
  t.equal(hdr.data, '200')
  t.match(hdr.chal, { type: 'syncml:auth-MAC', format: 'b64' })
  t.notOk(message.hdr.cred)
  const params = parseHmacHeader(delivery.userProperties['x-syncml-hmac']!)
  t.equal(params.username, 'dms')
  t.equal(params.mac, hmacMac('dms', 'srv-secret', nonceBytes('REVG'), delivery.payload))

  const bad = buildMessage({ sessionId: '6', msgId: '2', target: SERVER, source: DEVICE }, [alert('1226')]).xml
  await device.send(SERVER, bad, { 'x-syncml-hmac': hmacHeader('dev', 'dev-secret', nonceBytes('QUJD'), Buffer.from(bad)) })
  t.equal(hdrStatus((await device.nextMessage()).message)!.data, '401', 'the old nonce no longer serves')
})

t.test('a WBXML server answers a WBXML Package 1 in WBXML', async (t) => {
  const { server, device } = await setup(t, { encoding: 'wbxml' })
  server.queueSession([get('./DevInfo/DmV')])
  await device.send(SERVER, xmlToWbxml(package1('7', '1', '')))
  const { message, delivery } = await device.nextMessage()
  t.equal(delivery.contentType, 'application/vnd.syncml.dm+wbxml')
  t.equal(delivery.payload[0], 0x02, 'WBXML 1.2')
  t.equal(hdrStatus(message)!.data, '212')
  t.ok(message.commands.some((c) => c.name === 'Get'))
})

t.test('malformed messages are recorded, not answered', async (t) => {
  const { server, device } = await setup(t)
  await device.send(SERVER, '<SyncML><SyncHdr>')
  await server.waitFor(() => server.malformed[0], 5000, 'malformed message')
  t.match(server.malformed[0]!.error, /SyncHdr or SyncBody/)
  t.ok(await device.quietFor(300))
})
