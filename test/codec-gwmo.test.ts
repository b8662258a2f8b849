import t from 'tap'
import { readFileSync } from 'node:fs'
import type { Alert, SyncMLMessage } from '../src/codec/syncml-model.ts'
import { decodeMessage, encodeMessage } from '../src/codec/syncml.ts'
import {
  ALERT,
  GWMO_ALERT_TYPE,
  GWMO_PAYLOAD_FORMAT,
  buildDeviceDetection,
  buildDeviceDetectionAlert,
  buildGenericAlert,
  buildGwAddress,
  buildLocationUpdate,
  buildServerList,
  parseDeviceDetection,
  parseGenericAlert,
  parseGwAddress,
  parseLocationUpdate,
  parseServerList,
} from '../src/codec/gwmo.ts'

const FIXTURES = new URL('./fixtures/syncml/', import.meta.url)
const utf8 = new TextEncoder()
const SEED_GW_ADDRESS = '2002:0:0:0:0:0:9da6:e219'

/** The first command of a fixture message, which must be an Alert. */
function fixtureAlert(name: string): Alert {
  const got = decodeMessage(new Uint8Array(readFileSync(new URL(name, FIXTURES))))
  if (!got.ok) throw new Error(`${name}: ${got.error.message}`)
  const alert = got.value.body[0]
  if (alert?.kind !== 'Alert') throw new Error(`${name}: no Alert`)
  return alert
}

/** The Alert of a whole message built around `alertXml`, through the real decoder. */
function alertFrom(alertXml: string): Alert {
  const xml =
    '<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto>' +
    '<SessionID>1</SessionID><MsgID>1</MsgID><Target><LocURI>mac:01-ab-34-ef-69-0c</LocURI></Target>' +
    `<Source><LocURI>192.168.4.1</LocURI></Source></SyncHdr><SyncBody>${alertXml}<Final/></SyncBody></SyncML>`
  const got = decodeMessage(utf8.encode(xml))
  if (!got.ok) throw new Error(got.error.message)
  const alert = got.value.body[0]
  if (alert?.kind !== 'Alert') throw new Error(`not an Alert: ${JSON.stringify(alert)}`)
  return alert
}

function message(body: Alert[]): SyncMLMessage {
  return {
    hdr: {
      verDTD: '1.2',
      verProto: 'DM/1.2',
      sessionId: '3',
      msgId: '1',
      target: { locUri: '192.168.4.1' },
      source: { locUri: 'mac:01-ab-34-ef-69-0c' },
    },
    body,
    final: true,
  }
}

/** Through the XML encoding and back. */
function overTheWire(alert: Alert): Alert {
  const got = decodeMessage(encodeMessage(message([alert]), 'xml'))
  if (!got.ok || got.value.body[0]?.kind !== 'Alert') throw new Error('did not read back')
  return got.value.body[0]
}

t.test('constants', async (t) => {
  t.strictSame(ALERT, {
    SERVER_INITIATED_MGMT: '1200',
    CLIENT_INITIATED_MGMT: '1201',
    NEXT_MESSAGE: '1222',
    SESSION_ABORT: '1223',
    GENERIC_ALERT: '1226',
    DEVICE_DETECTION: '1230',
  })
  t.strictSame(GWMO_ALERT_TYPE, {
    BOOTSTRAPPED_DMS_LIST: 'urn:oma:gwmo:1.0:BootstrappedDMSList',
    ASSOCIATED_GATEWAY: 'urn:oma:gwmo:1.0:AssociatedGateway',
    LOCATION_UPDATE: 'urn:oma:gwmo:1.0:LocationUpdate',
  })
  t.equal(GWMO_PAYLOAD_FORMAT, 'text/plain')
})

t.test("the seed's examples", async (t) => {
  const associated = fixtureAlert('gwmo-associated-gateway.xml')
  const generic = parseGenericAlert(associated)
  t.match(generic, {
    ok: true,
    value: {
      items: [
        {
          type: 'urn:oma:gwmo:1.0:AssociatedGateway',
          format: 'text/plain',
          source: 'mac:01-ab-34-ef-69-0c',
          target: 'http://www.telco_operator.com/mgmt-server',
        },
      ],
    },
  }, 'Associated Gateway Generic Alert, Type trimmed')
  const data = generic.ok ? generic.value.items[0]?.data : undefined
  t.match(data, /<\/GwAddress>\n\s*-- \n\s*$/, 'the "--" before "]]>" is part of the CDATA text')
  t.strictSame(typeof data === 'string' && parseGwAddress(data), { ok: true, value: SEED_GW_ADDRESS }, 'its GwAddress')

  t.strictSame(parseDeviceDetection(fixtureAlert('gwmo-device-detection-share-true.xml')), {
    ok: true,
    value: { gwAddress: SEED_GW_ADDRESS, share: true },
  }, 'Device Detection Alert, CDATA in Alert, Share True')
  t.strictSame(parseDeviceDetection(fixtureAlert('gwmo-device-detection-share-false.xml')), {
    ok: true,
    value: { gwAddress: SEED_GW_ADDRESS, share: false },
  }, 'Device Detection Alert, CDATA in Alert, Share False')

  const list = parseGenericAlert(fixtureAlert('gwmo-bootstrapped-dms-list.xml'))
  t.match(list, { ok: true, value: { items: [{ type: GWMO_ALERT_TYPE.BOOTSTRAPPED_DMS_LIST, format: 'text/plain', target: '192.168.4.1' }] } })
  const listData = list.ok ? list.value.items[0]?.data : undefined
  t.strictSame(typeof listData === 'string' && parseServerList(listData), {
    ok: true,
    value: ['http://www.someDMServer.com', 'http://www.nextDMServer.com'],
  }, 'Bootstrapped DMS List, IDs trimmed')
})

t.test('Device Detection Alert: placements, element names, Share forms', async (t) => {
  const payload = (address: string, share: string, name = 'GwAddress') => `<${name}>${address}</${name}><Share>${share}</Share>`
  const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
  const placements: [string, (p: string) => string][] = [
    ['escaped in Item/Data', (p) => `<Alert><CmdID>1</CmdID><Data>1230</Data><Item><Data>${escape(p)}</Data></Item></Alert>`],
    ['CDATA in Item/Data', (p) => `<Alert><CmdID>1</CmdID><Data>1230</Data><Item><Data><![CDATA[${p}]]></Data></Item></Alert>`],
    ['elements in Item/Data', (p) => `<Alert><CmdID>1</CmdID><Data>1230</Data><Item><Data>\n${p}\n</Data></Item></Alert>`],
    ['bare CDATA in Alert', (p) => `<Alert><CmdID>1</CmdID><Data>1230</Data>\n  <![CDATA[\n${p}\n  ]]>\n</Alert>`],
    ['escaped text in Alert', (p) => `<Alert><CmdID>1</CmdID><Data>1230</Data>${escape(p)}</Alert>`],
  ]
  for (const [where, wrap] of placements) {
    for (const name of ['GwAddress', 'GwAddr']) {
      t.strictSame(parseDeviceDetection(alertFrom(wrap(payload(' 10.0.0.1 ', 'true', name)))), {
        ok: true,
        value: { gwAddress: '10.0.0.1', share: true },
      }, `${where}, ${name}`)
    }
  }
  const shares: [string, boolean][] = [
    ['True', true],
    ['true', true],
    ['TRUE', true],
    ['1', true],
    ['\n  true  \n', true],
    ['False', false],
    ['false', false],
    ['FALSE', false],
    ['0', false],
  ]
  for (const [share, want] of shares) {
    t.strictSame(parseDeviceDetection(alertFrom(placements[1]![1](payload('gw.local', share)))), {
      ok: true,
      value: { gwAddress: 'gw.local', share: want },
    }, `Share ${JSON.stringify(share)}`)
  }
  t.strictSame(parseDeviceDetection(alertFrom(placements[1]![1]('<GwAddress>gw.local</GwAddress>'))), {
    ok: true,
    value: { gwAddress: 'gw.local', share: false },
  }, 'no Share: the address is not shared')
  t.strictSame(parseDeviceDetection(alertFrom(placements[1]![1](`<?xml version="1.0"?><DeviceDetection>${payload('gw', '1')}</DeviceDetection>`))), {
    ok: true,
    value: { gwAddress: 'gw', share: true },
  }, 'wrapped in an outer element, with an XML declaration')
})

t.test('Device Detection Alert: bad ones refused', async (t) => {
  const inItem = (p: string) => `<Alert><CmdID>1</CmdID><Data>1230</Data><Item><Data><![CDATA[${p}]]></Data></Item></Alert>`
  const cases: [string, string, RegExp][] = [
    ['no address', inItem('<Share>true</Share>'), /no GwAddress or GwAddr/],
    ['empty address', inItem('<GwAddress> </GwAddress><Share>true</Share>'), /empty/],
    ['address holding elements', inItem('<GwAddress><ip>1</ip></GwAddress><Share>true</Share>'), /not text/],
    ['Share yes', inItem('<GwAddress>gw</GwAddress><Share>yes</Share>'), /Share "yes" is not an xs:boolean/],
    ['Share 2', inItem('<GwAddress>gw</GwAddress><Share>2</Share>'), /xs:boolean/],
    ['Share empty', inItem('<GwAddress>gw</GwAddress><Share/>'), /xs:boolean/],
    ['payload not XML', inItem('<GwAddress>gw</GwAddress><Share>true'), /not well-formed/],
    ['payload with an entity declaration', inItem('<!DOCTYPE x [<!ENTITY a "b">]><GwAddress>&a;</GwAddress>'), /not well-formed/],
    ['no payload', '<Alert><CmdID>1</CmdID><Data>1230</Data></Alert>', /no payload/],
    ['empty payload', '<Alert><CmdID>1</CmdID><Data>1230</Data><Item><Data>  </Data></Item></Alert>', /no payload/],
    ['not a Device Detection Alert', '<Alert><CmdID>1</CmdID><Data>1226</Data><![CDATA[<GwAddress>gw</GwAddress>]]></Alert>', /not a Device Detection Alert/],
    ['payload over the tight limits', inItem(`<GwAddress>gw</GwAddress>${'<x/>'.repeat(100)}`), /elements/],
  ]
  for (const [name, xml, reason] of cases) {
    const got = parseDeviceDetection(alertFrom(xml))
    t.match(got, { ok: false, error: { code: 'PAYLOAD_FORMAT', message: reason } }, name)
  }
})

t.test('Device Detection Alert: built for peers, read back', async (t) => {
  t.equal(buildDeviceDetection({ gwAddress: 'a&b', share: false }), '<GwAddress>a&amp;b</GwAddress><Share>false</Share>')
  for (const inline of [false, true]) {
    const alert = buildDeviceDetectionAlert({ cmdId: '4', gwAddress: 'fe80::1', share: true, inline })
    t.equal(alert.data, '1230')
    t.equal(alert.inline !== undefined, inline, inline ? 'payload inline' : 'payload in Item/Data')
    t.strictSame(parseDeviceDetection(overTheWire(alert)), { ok: true, value: { gwAddress: 'fe80::1', share: true } })
  }
})

t.test('Generic Alert: build', async (t) => {
  const alert = buildGenericAlert({
    cmdId: '5',
    type: GWMO_ALERT_TYPE.ASSOCIATED_GATEWAY,
    data: buildGwAddress(SEED_GW_ADDRESS),
    source: 'mac:01-ab-34-ef-69-0c',
    target: 'http://www.someDMServer.com',
  })
  t.strictSame(alert, {
    kind: 'Alert',
    cmdId: '5',
    data: '1226',
    items: [
      {
        meta: { type: 'urn:oma:gwmo:1.0:AssociatedGateway', format: 'text/plain' },
        data: `<GwAddress>${SEED_GW_ADDRESS}</GwAddress>`,
        source: { locUri: 'mac:01-ab-34-ef-69-0c' },
        target: { locUri: 'http://www.someDMServer.com' },
      },
    ],
  })
  const xml = new TextDecoder().decode(encodeMessage(message([alert]), 'xml'))
  t.match(
    xml,
    '<Alert><CmdID>5</CmdID><Data>1226</Data><Item><Target><LocURI>http://www.someDMServer.com</LocURI></Target>' +
      '<Source><LocURI>mac:01-ab-34-ef-69-0c</LocURI></Source><Meta><Format xmlns="syncml:metinf">text/plain</Format>' +
      '<Type xmlns="syncml:metinf">urn:oma:gwmo:1.0:AssociatedGateway</Type></Meta>' +
      '<Data>&lt;GwAddress&gt;2002:0:0:0:0:0:9da6:e219&lt;/GwAddress&gt;</Data></Item></Alert>',
    'written as the seed lays it out',
  )
  const full = buildGenericAlert({ cmdId: '6', type: 'x-vendor', format: 'int', data: '3', mark: 'critical', correlator: 'c9' })
  t.strictSame(full, { kind: 'Alert', cmdId: '6', data: '1226', correlator: 'c9', items: [{ meta: { type: 'x-vendor', format: 'int', mark: 'critical' }, data: '3' }] })
  t.strictSame(parseGenericAlert(overTheWire(full)), { ok: true, value: { items: [{ type: 'x-vendor', format: 'int', data: '3', mark: 'critical' }] } })
})

t.test('Generic Alert: parse', async (t) => {
  const twoItems = alertFrom(
    '<Alert><CmdID>1</CmdID><Data>1226</Data>' +
      '<Item><Meta><Type xmlns="syncml:metinf">\n  urn:oma:at:x:1.0\n</Type><Format xmlns="syncml:metinf">chr</Format></Meta><Data>a</Data></Item>' +
      '<Item><Source><LocURI>./x</LocURI></Source><Meta><Type xmlns="syncml:metinf">any string at all</Type><Format xmlns="syncml:metinf">b64</Format></Meta><Data>AQI=</Data></Item></Alert>',
  )
  t.strictSame(parseGenericAlert(twoItems), {
    ok: true,
    value: {
      items: [
        { type: 'urn:oma:at:x:1.0', format: 'chr', data: 'a' },
        { type: 'any string at all', format: 'b64', data: new Uint8Array([1, 2]), source: './x' },
      ],
    },
  })
  const bad: [string, string, RegExp][] = [
    ['not 1226', '<Alert><CmdID>1</CmdID><Data>1201</Data></Alert>', /not a Generic Alert/],
    ['no Item', '<Alert><CmdID>1</CmdID><Data>1226</Data></Alert>', /no Item/],
    ['no Type', '<Alert><CmdID>1</CmdID><Data>1226</Data><Item><Meta><Format xmlns="syncml:metinf">chr</Format></Meta><Data>a</Data></Item></Alert>', /Meta\/Type/],
    ['no Format', '<Alert><CmdID>1</CmdID><Data>1226</Data><Item><Meta><Type xmlns="syncml:metinf">t</Type></Meta><Data>a</Data></Item></Alert>', /Meta\/Format/],
    ['no Data', '<Alert><CmdID>1</CmdID><Data>1226</Data><Item><Meta><Type xmlns="syncml:metinf">t</Type><Format xmlns="syncml:metinf">chr</Format></Meta></Item></Alert>', /no Data/],
  ]
  for (const [name, xml, reason] of bad) {
    t.match(parseGenericAlert(alertFrom(xml)), { ok: false, error: { code: 'PAYLOAD_FORMAT', message: reason } }, name)
  }
})

t.test('Bootstrapped DMS List payload', async (t) => {
  t.equal(
    buildServerList(['http://a.example', 'x&y<z']),
    '<ServerList><ServerInfo><ID>http://a.example</ID></ServerInfo><ServerInfo><ID>x&amp;y&lt;z</ID></ServerInfo></ServerList>',
  )
  t.equal(buildServerList([]), '<ServerList></ServerList>')
  for (const ids of [[], ['one'], ['http://a.example', 'x&y<z', ' spaced ']]) {
    t.strictSame(parseServerList(buildServerList(ids)), { ok: true, value: ids.map((i) => i.trim()) }, `round trip ${ids.length}`)
  }
  const alert = buildGenericAlert({ cmdId: '2', type: GWMO_ALERT_TYPE.BOOTSTRAPPED_DMS_LIST, data: buildServerList(['s1', 's2']) })
  const read = parseGenericAlert(overTheWire(alert))
  const data = read.ok ? read.value.items[0]?.data : undefined
  t.strictSame(typeof data === 'string' && parseServerList(data), { ok: true, value: ['s1', 's2'] }, 'through a whole message')
  t.match(parseServerList('<Other/>'), { ok: false, error: { code: 'PAYLOAD_FORMAT', message: /no ServerList/ } })
  t.match(parseServerList('<ServerList><ServerInfo/></ServerList>'), { ok: false, error: { code: 'PAYLOAD_FORMAT', at: 'ServerList/ServerInfo[1]/ID' } })
  t.match(parseServerList('<ServerList><ServerInfo><ID>'), { ok: false, error: { code: 'PAYLOAD_FORMAT' } })
})

t.test('Associated Gateway payload', async (t) => {
  t.equal(buildGwAddress('a<b'), '<GwAddress>a&lt;b</GwAddress>')
  t.strictSame(parseGwAddress(buildGwAddress('192.168.4.1')), { ok: true, value: '192.168.4.1' })
  t.strictSame(parseGwAddress('<GwAddr>gw</GwAddr>'), { ok: true, value: 'gw' })
  t.match(parseGwAddress('<Share>1</Share>'), { ok: false, error: { code: 'PAYLOAD_FORMAT' } })
  t.match(parseGwAddress('<GwAddress/>'), { ok: false, error: { code: 'PAYLOAD_FORMAT' } })
})

t.test('Location Update payload', async (t) => {
  t.equal(
    buildLocationUpdate({ devAddresses: ['10.0.0.7', 'fe80::7'], gwAddress: '10.0.0.1' }),
    '<LocationUpdate><DevAddress>10.0.0.7</DevAddress><DevAddress>fe80::7</DevAddress><GwAddress>10.0.0.1</GwAddress></LocationUpdate>',
  )
  t.equal(buildLocationUpdate({ devAddresses: ['10.0.0.7'] }), '<LocationUpdate><DevAddress>10.0.0.7</DevAddress></LocationUpdate>', 'no gateway address unless shared')
  for (const update of [{ devAddresses: ['a', 'b'], gwAddress: 'g' }, { devAddresses: ['a'] }, { devAddresses: [] }]) {
    t.strictSame(parseLocationUpdate(buildLocationUpdate(update)), { ok: true, value: update })
  }
  t.match(parseLocationUpdate('<LocationUpdate><DevAddress/></LocationUpdate>'), { ok: false, error: { code: 'PAYLOAD_FORMAT', at: 'LocationUpdate/DevAddress[1]' } })
  t.match(parseLocationUpdate('<Other/>'), { ok: false, error: { code: 'PAYLOAD_FORMAT' } })
})
