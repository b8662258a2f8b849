// The DM Gateway and local DM Bootstrap Server peers, and the command line, over a real broker against a
// scripted device: detection forms and the DMS list, refusal mode, transparent forwarding, bootstrap SEC/MAC.
import t from 'tap'
import { createHmac } from 'node:crypto'
import { startMosquitto } from './helpers/mosquitto.ts'
import { md5Digest } from './peers/auth.ts'
import { buildAccountCommands, sendBootstrap } from './peers/bootstrap-server.ts'
import { main } from './peers/cli.ts'
import { BOOTSTRAPPED_DMS_LIST, startGateway, type Gateway, type GatewayOptions } from './peers/gateway.ts'
import { ScriptedDevice } from './peers/scripted-device.ts'
import { alert, buildMessage, parseMessage, type ParsedMessage } from './peers/syncml.ts'
import { parseWbxmlMessage } from './peers/wbxml.ts'

const DEVICE = 'mac:01-ab-34-ef-69-0c'
const GW = 'http://gw.local'
const CREDS = { serverName: 'gw', serverPassword: 'gw-secret', clientName: 'dev', clientPassword: 'dev-secret' }

const broker = await startMosquitto()
t.teardown(() => broker.stop())

async function setup(t: { teardown(fn: () => unknown): void }, options: Partial<GatewayOptions> = {}): Promise<{ gateway: Gateway; device: ScriptedDevice }> {
  const gateway = await startGateway({ brokerUrl: broker.url, gatewayId: GW, deviceId: DEVICE, ...CREDS, ...options })
  const device = await ScriptedDevice.start(broker.url, DEVICE)
  t.teardown(async () => {
    await gateway.stop()
    await device.stop()
  })
  return { gateway, device }
}

/** The device's answer to a detection: Statuses, its Cred, and the Bootstrapped DMS List Generic Alert. */
function dmsListReply(detection: ParsedMessage, servers: string[]): string {
  const alertCmd = detection.commands.find((c) => c.name === 'Alert')!
  const list = `<ServerList>${servers.map((s) => `<ServerInfo><ID>${s}</ID></ServerInfo>`).join('')}</ServerList>`
  return buildMessage(
    { sessionId: detection.hdr.sessionId, msgId: '1', target: GW, source: DEVICE, locName: 'dev', cred: { type: 'syncml:auth-md5', data: md5Digest('dev', 'dev-secret', new Uint8Array(0)) } },
    [
      { name: 'Status', msgRef: detection.hdr.msgId, cmdRef: '0', cmd: 'SyncHdr', data: '212', chal: { type: 'syncml:auth-md5', format: 'b64', nextNonce: 'R3dOb25jZQ==' } },
      { name: 'Status', msgRef: detection.hdr.msgId, cmdRef: alertCmd.cmdId, cmd: 'Alert', data: '200' },
      {
        name: 'Alert',
        data: '1226',
        items: [{ source: DEVICE, target: GW, meta: { type: BOOTSTRAPPED_DMS_LIST, format: 'text/plain' }, data: { cdata: list } }],
      },
    ],
  ).xml
}

t.test('detect: the DDA goes out authenticated in a pushed session and the DMS list comes back parsed', async (t) => {
  const { gateway, device } = await setup(t)
  const detecting = gateway.detect({ gwAddress: '2002:0:0:0:0:0:9da6:e219', share: false, form: 'inline-cdata' })
  const { message } = await device.nextMessage()
  t.equal(message.hdr.source, GW)
  t.equal(message.hdr.cred?.data, md5Digest('gw', 'gw-secret', new Uint8Array(0)))
  const dda = message.commands.find((c) => c.name === 'Alert')!
  t.equal(dda.data, '1230')
  t.equal(dda.inline, '<GwAddress>2002:0:0:0:0:0:9da6:e219</GwAddress><Share>false</Share>')
  await device.send(GW, dmsListReply(message, ['http://www.someDMServer.com', ' http://www.nextDMServer.com ']))
  t.same(await detecting, ['http://www.someDMServer.com', 'http://www.nextDMServer.com'])
  const { message: closing } = await device.nextMessage()
  t.same(closing.commands.map((c) => `${c.cmd} ${c.data}`), ['SyncHdr 212', 'Alert 200'], 'the Generic Alert is acknowledged')
  const s = await gateway.waitForSession((x) => x.origin === 'push' && x.closed)
  t.ok(s.deviceAuthenticated)
  t.equal(gateway.serverNonce, 'R3dOb25jZQ==')
})

t.test('detection forms and element names as the device receives them', async (t) => {
  const { gateway, device } = await setup(t)
  await gateway.sendDetection({ gwAddress: '192.168.4.1', share: true, form: 'item-escaped' })
  const escaped = (await device.nextMessage()).message.commands[0]!
  t.equal(escaped.items[0]!.data, '<GwAddress>192.168.4.1</GwAddress><Share>true</Share>')
  await gateway.sendDetection({ gwAddress: '192.168.4.1', share: true, form: 'item-cdata', addrElement: 'GwAddr', shareText: 'True' })
  const delivery = await device.next()
  t.match(delivery.payload.toString(), '<Data><![CDATA[<GwAddr>192.168.4.1</GwAddr><Share>True</Share>]]></Data>')
})

t.test('no-auth mode sends no Cred and gives up when the device refuses', async (t) => {
  const { gateway, device } = await setup(t, { noAuth: true })
  const pushed = await gateway.sendDetection({ gwAddress: '192.168.4.1', share: true })
  const { message } = await device.nextMessage()
  t.notOk(message.hdr.cred)
  await device.send(
    GW,
    buildMessage({ sessionId: message.hdr.sessionId, msgId: '1', target: GW, source: DEVICE }, [
      { name: 'Status', msgRef: '1', cmdRef: '0', cmd: 'SyncHdr', data: '407', chal: { type: 'syncml:auth-md5', format: 'b64', nextNonce: 'WFla' } },
      { name: 'Status', msgRef: '1', cmdRef: '1', cmd: 'Alert', data: '407' },
    ]).xml,
  )
  const s = await gateway.waitForSession((x) => x.sessionId === pushed.sessionId && x.closed)
  t.same(s.hdrStatuses, ['407'])
  t.equal(s.statuses[0]?.code, '407')
  t.ok(await device.quietFor(300), 'nothing more is sent')
})

t.test('transparent mode forwards notification bytes unchanged', async (t) => {
  const { gateway, device } = await setup(t)
  const bytes = Buffer.from('00112233445566778899aabbccddeeff02c80000001a2b03616263', 'hex')
  await gateway.forwardNotification(bytes)
  const d = await device.next()
  t.equal(d.topic, 'omadm/v1/mac%3A01-ab-34-ef-69-0c/notification')
  t.same(d.payload, bytes)
})

t.test('bootstrap: SEC and MAC user properties, both encodings, the MAC over the bytes as sent', async (t) => {
  const device = await ScriptedDevice.start(broker.url, DEVICE)
  t.teardown(() => device.stop())
  const commands = buildAccountCommands({
    id: 'gw', serverId: GW, addr: 'mqtt://127.0.0.1:1883', clientName: 'dev', clientPassword: 'dev-secret',
    serverName: 'gw', serverPassword: 'gw-secret', role: 'gateway',
  })
  const cases = [
    { encoding: 'wbxml', sec: 'NETWORKID', key: '310150123456789' },
    { encoding: 'xml', sec: 'USERPIN', key: '1234' },
    { encoding: 'wbxml', sec: 'USERPIN_NETWORKID', key: '1234:310150123456789' },
  ] as const
  for (const c of cases) {
    const sent = await sendBootstrap({ brokerUrl: broker.url, deviceId: DEVICE, commands, encoding: c.encoding, sec: c.sec, userPin: '1234', networkId: '310150123456789' })
    const d = await device.next()
    t.equal(d.channel, 'bootstrap')
    t.equal(d.contentType, `application/vnd.syncml.dm+${c.encoding}`)
    t.equal(d.userProperties.SEC, c.sec)
    t.equal(d.userProperties.MAC, createHmac('sha1', c.key).update(d.payload).digest('hex'), `${c.sec} MAC`)
    t.same(d.payload, Buffer.from(sent.payload))
    const outcome = c.encoding === 'wbxml' ? parseWbxmlMessage(d.payload) : parseMessage(d.payload.toString())
    t.ok(outcome.ok && outcome.message.commands.length === commands.length && outcome.message.final, `${c.encoding} message with every Add`)
  }
  await sendBootstrap({ brokerUrl: broker.url, deviceId: DEVICE, commands, encoding: 'xml', sec: 'USERPIN', userPin: '1', macOverride: 'deadbeef' })
  t.equal((await device.next()).userProperties.MAC, 'deadbeef')
})

t.test('command line: bootstrap and gateway detect print one line per message; bad usage exits 2', async (t) => {
  const device = await ScriptedDevice.start(broker.url, DEVICE)
  t.teardown(() => device.stop())
  const lines: string[] = []
  const code = await main(
    ['bootstrap', '--broker', broker.url, '--device-id', DEVICE, '--sec', 'NETWORKID', '--network-id', 'n',
      '--account-id', 'gw', '--server-id', GW, '--addr', 'x', '--client-name', 'a', '--client-password', 'b',
      '--server-name', 'c', '--server-password', 'd', '--role', 'gateway'],
    (l) => lines.push(l),
  )
  t.equal(code, 0)
  const d = await device.next()
  t.equal(d.contentType, 'application/vnd.syncml.dm+wbxml')
  t.match(lines, [/^out omadm\/v1\/mac%3A01-ab-34-ef-69-0c\/bootstrap: bootstrap wbxml \d+ bytes SEC=NETWORKID MAC=[0-9a-f]{40}$/])

  const detectLines: string[] = []
  const detecting = main(
    ['gateway', 'detect', '--broker', broker.url, '--gateway-id', GW, '--device-id', DEVICE, '--server-name', 'gw',
      '--server-password', 'gw-secret', '--client-name', 'dev', '--client-password', 'dev-secret',
      '--gw-address', '10.0.0.1', '--share', 'true'],
    (l) => detectLines.push(l),
  )
  const { message } = await device.nextMessage()
  await device.send(GW, dmsListReply(message, ['http://dms.example.com']))
  t.equal(await detecting, 0)
  t.equal((await device.nextMessage()).message.hdr.source, GW, 'the gateway acknowledged the Generic Alert')
  t.ok(detectLines.some((l) => /^> omadm\/v1\/mac%3A01-ab-34-ef-69-0c\/dm SessionID \w+ MsgID 1 http:\/\/gw.local -> mac:01-ab-34-ef-69-0c Cred: Alert 1230/.test(l)))
  t.ok(detectLines.some((l) => l.startsWith('< omadm/v1/http%3A%2F%2Fgw.local/dm') && l.includes(`Alert 1226 [${BOOTSTRAPPED_DMS_LIST}]`)))
  t.equal(detectLines[detectLines.length - 1], 'server http://dms.example.com')

  const serverLines: string[] = []
  let listening: () => void = () => {}
  const ready = new Promise<void>((resolve) => (listening = resolve))
  const serving = main(
    ['dm-server', '--broker', broker.url, '--server-id', 'http://dms.example.com', '--device-id', DEVICE, '--server-name', 's',
      '--server-password', 'sp', '--client-name', 'dev', '--client-password', 'dev-secret', '--get', './DevInfo/Mod', '--sessions', '1'],
    (l) => {
      serverLines.push(l)
      if (l.startsWith('listening on ')) listening()
    },
  )
  await ready
  t.equal(serverLines[0], 'listening on omadm/v1/http%3A%2F%2Fdms.example.com/dm')
  const cred = { type: 'syncml:auth-md5', data: md5Digest('dev', 'dev-secret', new Uint8Array(0)) }
  await device.send('http://dms.example.com', buildMessage({ sessionId: '9', msgId: '1', target: 'http://dms.example.com', source: DEVICE, cred }, [alert('1201')]).xml)
  const { message: p2 } = await device.nextMessage()
  const getCmd = p2.commands.find((c) => c.name === 'Get')!
  // binding.md §6: the device's Cred in every message, made with the nonce of the server's last one.
  const next = p2.commands.find((c) => c.name === 'Status' && c.cmdRef === '0')?.chal?.nextNonce ?? ''
  const again = { type: 'syncml:auth-md5', data: md5Digest('dev', 'dev-secret', new Uint8Array(Buffer.from(next, 'base64'))) }
  await device.send(
    'http://dms.example.com',
    buildMessage({ sessionId: '9', msgId: '9', target: 'http://dms.example.com', source: DEVICE, locName: 'dev', cred: again }, [
      { name: 'Status', msgRef: p2.hdr.msgId, cmdRef: '0', cmd: 'SyncHdr', data: '212' },
      { name: 'Status', msgRef: p2.hdr.msgId, cmdRef: getCmd.cmdId, cmd: 'Get', data: '200' },
      { name: 'Results', msgRef: p2.hdr.msgId, cmdRef: getCmd.cmdId, items: [{ source: './DevInfo/Mod', data: 'Pi4' }] },
    ]).xml,
  )
  t.equal(await serving, 0)
  t.ok(serverLines.includes('session 9 closed: device authenticated'))
  t.ok(serverLines.includes('  status Get ./DevInfo/Mod: 200'))
  t.ok(serverLines.includes('  result ./DevInfo/Mod = Pi4'))

  t.equal(await main(['bootstrap', '--sec', 'BOGUS']), 2)
  t.equal(await main(['nonsense']), 2)
})
