import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CONFIG_DEFAULTS, loadConfigFile, parseConfig, readBrokerTls } from '../src/config.ts'

const minimal = () => ({
  deviceId: 'mac:01-ab-34-ef-69-0c',
  broker: { url: 'mqtt://broker.example:1883' },
  stateDir: '/var/lib/gwmo-agent',
  factoryBootstrap: '/etc/gwmo-agent/factory.xml',
})

type Raw = Record<string, unknown>
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the tests write every shape, good and bad
const withChange = (change: (raw: Record<string, any>) => void): Raw => {
  const raw = JSON.parse(JSON.stringify(minimal()))
  change(raw)
  return raw
}

t.test('a minimal configuration gets every default, frozen', async (t) => {
  const result = parseConfig(minimal(), {})
  if (!result.ok) throw new Error(result.error)
  const { config } = result
  t.same(config, {
    deviceId: 'mac:01-ab-34-ef-69-0c',
    broker: { url: 'mqtt://broker.example:1883', clientId: 'gwmo-mac:01-ab-34-ef-69-0c', keepaliveSeconds: 30 },
    stateDir: '/var/lib/gwmo-agent',
    factoryBootstrap: '/etc/gwmo-agent/factory.xml',
    topicPrefix: 'omadm/v1',
    maxPacketSize: 65536,
    devInfo: { mod: 'unknown', lang: 'en-US', devTyp: 'gateway-end-device' },
    acceptDetectionFrom: 'bootstrapped',
    logLevel: 'info',
    session: { timeoutSeconds: 30, retries: 3, retryBackoffSeconds: 5, maxBackoffSeconds: 600 },
    location: { pollSeconds: 30, enabled: true },
    limits: {
      maxNodes: 2000, treeBytes: 1048576, leafBytes: 16384, nodesPerParty: 250, bytesPerParty: 131072,
      pendingAlertsPerParty: 16, detectionsPerMinute: 6,
    },
    objects: [],
  })
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.broker) && Object.isFrozen(config.session) && Object.isFrozen(config.limits))
  t.ok(Object.isFrozen(config.devInfo) && Object.isFrozen(config.location))
  t.throws(() => {
    ;(config.broker as { url: string }).url = 'mqtt://elsewhere'
  })
  t.equal(config.session.timeoutSeconds, CONFIG_DEFAULTS.session.timeoutSeconds)
})

t.test('a full configuration is taken as written', async (t) => {
  const raw = {
    deviceId: 'IMEI:493005100592800',
    broker: {
      url: 'mqtts://broker.example',
      username: 'device-7',
      password: 'file-password',
      ca: '/etc/ssl/ca.pem',
      cert: '/etc/ssl/device.pem',
      key: '/etc/ssl/device.key',
      clientId: 'device-7',
      keepaliveSeconds: 120,
    },
    stateDir: '/state',
    factoryBootstrap: '/factory.wbxml',
    topicPrefix: 'plant/4/omadm',
    maxPacketSize: 1024,
    userPin: '1234',
    networkId: 'net-secret',
    devInfo: { man: 'Acme', mod: 'Sensor 9', lang: 'de-DE', devTyp: 'sensor', fwV: '1.0', swV: '2.0', hwV: 'B', oem: 'Acme OEM' },
    acceptDetectionFrom: 'any',
    logLevel: 'debug',
    session: { timeoutSeconds: 10, retries: 0, retryBackoffSeconds: 1, maxBackoffSeconds: 1 },
    location: { pollSeconds: 5, enabled: false },
    limits: {
      maxNodes: 500, treeBytes: 65536, leafBytes: 4096, nodesPerParty: 0, bytesPerParty: 8192,
      pendingAlertsPerParty: 4, detectionsPerMinute: 60,
    },
    objects: [],
  }
  const result = parseConfig(raw, {})
  if (!result.ok) throw new Error(result.error)
  t.same(result.config, raw)
})

t.test('secrets from the environment win over the file; empty variables count as unset', async (t) => {
  const raw = withChange((r) => {
    r.broker.username = 'u'
    r.broker.password = 'from-file'
    r.userPin = 'pin-file'
    r.networkId = 'net-file'
  })
  const env = { GWMO_BROKER_PASSWORD: 'from-env', GWMO_USER_PIN: 'pin-env', GWMO_NETWORK_ID: 'net-env' }
  const overridden = parseConfig(raw, env)
  if (!overridden.ok) throw new Error(overridden.error)
  t.equal(overridden.config.broker.password, 'from-env')
  t.equal(overridden.config.userPin, 'pin-env')
  t.equal(overridden.config.networkId, 'net-env')

  const empty = parseConfig(raw, { GWMO_BROKER_PASSWORD: '', GWMO_USER_PIN: '', GWMO_NETWORK_ID: undefined })
  if (!empty.ok) throw new Error(empty.error)
  t.equal(empty.config.broker.password, 'from-file')
  t.equal(empty.config.userPin, 'pin-file')
  t.equal(empty.config.networkId, 'net-file')

  const onlyEnv = parseConfig(minimal(), { GWMO_USER_PIN: '0000' })
  if (!onlyEnv.ok) throw new Error(onlyEnv.error)
  t.equal(onlyEnv.config.userPin, '0000')
  t.equal(onlyEnv.config.networkId, undefined)
})

t.test('relative paths resolve against the base directory only when one is given', async (t) => {
  const raw = withChange((r) => {
    r.stateDir = 'state'
    r.factoryBootstrap = './factory.xml'
    r.broker.ca = 'tls/ca.pem'
  })
  const plain = parseConfig(raw, {})
  const based = parseConfig(raw, {}, { baseDir: '/etc/gwmo-agent' })
  if (!plain.ok || !based.ok) throw new Error('expected both to parse')
  t.equal(plain.config.stateDir, 'state')
  t.equal(based.config.stateDir, '/etc/gwmo-agent/state')
  t.equal(based.config.factoryBootstrap, '/etc/gwmo-agent/factory.xml')
  t.equal(based.config.broker.ca, '/etc/gwmo-agent/tls/ca.pem')
})

const bad: Array<[string, unknown, string]> = [
  ['not an object', [1], 'config: must be a JSON object'],
  ['null', null, 'config: must be a JSON object'],
  ['unknown top-level key', withChange((r) => { r.brokr = {} }), 'config: unknown key "brokr"'],
  ['unknown nested key', withChange((r) => { r.broker.usrname = 'x' }), 'config: unknown key "broker.usrname"'],
  ['unknown devInfo key', withChange((r) => { r.devInfo = { manufacturer: 'x' } }), 'config: unknown key "devInfo.manufacturer"'],
  ['unknown session key', withChange((r) => { r.session = { timeout: 3 } }), 'config: unknown key "session.timeout"'],
  ['a typo is named before the missing key it hides', withChange((r) => { r.devicId = r.deviceId; delete r.deviceId }), 'config: unknown key "devicId"'],
  ['"//" comment keys are not accepted', withChange((r) => { r['//'] = 'note' }), 'config: unknown key "//"'],
  ['missing deviceId', withChange((r) => { delete r.deviceId }), 'config: deviceId: required'],
  ['empty deviceId', withChange((r) => { r.deviceId = '' }), 'config: deviceId: must be a non-empty string'],
  ['deviceId with a space', withChange((r) => { r.deviceId = 'mac: 01' }), 'config: deviceId: must not contain white space'],
  ['deviceId not a string', withChange((r) => { r.deviceId = 42 }), 'config: deviceId: must be a non-empty string'],
  ['missing broker', withChange((r) => { delete r.broker }), 'config: broker: required'],
  ['broker not an object', withChange((r) => { r.broker = 'mqtt://x' }), 'config: broker: must be an object'],
  ['missing broker.url', withChange((r) => { delete r.broker.url }), 'config: broker.url: required'],
  ['http broker url', withChange((r) => { r.broker.url = 'http://broker' }), 'config: broker.url: must be an mqtt:// or mqtts:// URL'],
  ['no url at all', withChange((r) => { r.broker.url = 'broker:1883' }), 'config: broker.url: must be an mqtt:// or mqtts:// URL'],
  ['url without host', withChange((r) => { r.broker.url = 'mqtt://' }), 'config: broker.url: must be an mqtt:// or mqtts:// URL'],
  ['url with credentials', withChange((r) => { r.broker.url = 'mqtt://u:secret@broker' }), 'config: broker.url: must not hold credentials (use broker.username and broker.password)'],
  ['url with a path', withChange((r) => { r.broker.url = 'mqtt://broker/omadm' }), 'config: broker.url: must not have a path, query or fragment'],
  ['cert without key', withChange((r) => { r.broker.cert = '/c.pem' }), 'config: broker.key: required with broker.cert'],
  ['key without cert', withChange((r) => { r.broker.key = '/k.pem' }), 'config: broker.cert: required with broker.key'],
  ['keepalive zero', withChange((r) => { r.broker.keepaliveSeconds = 0 }), 'config: broker.keepaliveSeconds: must be an integer from 1 to 65535'],
  ['keepalive fractional', withChange((r) => { r.broker.keepaliveSeconds = 2.5 }), 'config: broker.keepaliveSeconds: must be an integer from 1 to 65535'],
  ['keepalive string', withChange((r) => { r.broker.keepaliveSeconds = '30' }), 'config: broker.keepaliveSeconds: must be an integer from 1 to 65535'],
  ['empty clientId', withChange((r) => { r.broker.clientId = '' }), 'config: broker.clientId: must be a non-empty string'],
  ['missing stateDir', withChange((r) => { delete r.stateDir }), 'config: stateDir: required'],
  ['missing factoryBootstrap', withChange((r) => { delete r.factoryBootstrap }), 'config: factoryBootstrap: required'],
  ['factoryBootstrap not a string', withChange((r) => { r.factoryBootstrap = ['a'] }), 'config: factoryBootstrap: must be a non-empty string'],
  ['prefix with a wildcard', withChange((r) => { r.topicPrefix = 'omadm/+' }), 'config: topicPrefix: must be topic levels without "+", "#" or empty levels'],
  ['prefix with a trailing slash', withChange((r) => { r.topicPrefix = 'omadm/v1/' }), 'config: topicPrefix: must be topic levels without "+", "#" or empty levels'],
  ['packet size too small', withChange((r) => { r.maxPacketSize = 1023 }), 'config: maxPacketSize: must be an integer from 1024 to 268435456'],
  ['packet size too large', withChange((r) => { r.maxPacketSize = 268435457 }), 'config: maxPacketSize: must be an integer from 1024 to 268435456'],
  ['detection policy', withChange((r) => { r.acceptDetectionFrom = 'all' }), 'config: acceptDetectionFrom: must be one of "bootstrapped", "any"'],
  ['log level', withChange((r) => { r.logLevel = 'trace' }), 'config: logLevel: must be one of "debug", "info", "warn", "error"'],
  ['devInfo not an object', withChange((r) => { r.devInfo = 'Acme' }), 'config: devInfo: must be an object'],
  ['devInfo.lang empty', withChange((r) => { r.devInfo = { lang: '' } }), 'config: devInfo.lang: must be a non-empty string'],
  ['session timeout zero', withChange((r) => { r.session = { timeoutSeconds: 0 } }), 'config: session.timeoutSeconds: must be an integer from 1 to 3600'],
  ['session retries negative', withChange((r) => { r.session = { retries: -1 } }), 'config: session.retries: must be an integer from 0 to 100'],
  ['backoff cap below base', withChange((r) => { r.session = { retryBackoffSeconds: 60, maxBackoffSeconds: 30 } }), 'config: session.maxBackoffSeconds: must not be less than session.retryBackoffSeconds'],
  ['location.enabled not boolean', withChange((r) => { r.location = { enabled: 'yes' } }), 'config: location.enabled: must be true or false'],
  ['location.pollSeconds', withChange((r) => { r.location = { pollSeconds: 0 } }), 'config: location.pollSeconds: must be an integer from 1 to 86400'],
  ['limits not an object', withChange((r) => { r.limits = 5 }), 'config: limits: must be an object'],
  ['limits: unknown key', withChange((r) => { r.limits = { maxBytes: 5 } }), 'config: unknown key "limits.maxBytes"'],
  ['limits.treeBytes too small', withChange((r) => { r.limits = { treeBytes: 100 } }), 'config: limits.treeBytes: must be an integer from 4096 to 2147483648'],
  ['a leaf larger than the tree', withChange((r) => { r.limits = { treeBytes: 8192, leafBytes: 8193 } }), 'config: limits.leafBytes: must be an integer from 1 to 8192'],
  ['a party\'s quota over the tree', withChange((r) => { r.limits = { maxNodes: 100, nodesPerParty: 101 } }), 'config: limits.nodesPerParty: must be an integer from 0 to 100'],
  ['a party\'s bytes over the tree', withChange((r) => { r.limits = { bytesPerParty: 2 ** 21 } }), 'config: limits.bytesPerParty: must be an integer from 0 to 1048576'],
  ['no pending alert at all', withChange((r) => { r.limits = { pendingAlertsPerParty: 0 } }), 'config: limits.pendingAlertsPerParty: must be an integer from 1 to 10000'],
  ['detections not a whole number', withChange((r) => { r.limits = { detectionsPerMinute: 1.5 } }), 'config: limits.detectionsPerMinute: must be an integer from 1 to 6000'],
]

t.test('bad configurations fail with one line naming the key', async (t) => {
  for (const [name, raw, error] of bad) {
    const result = parseConfig(raw, {})
    t.same(result, { ok: false, error }, name)
    if (!result.ok) t.notMatch(result.error, /\n/, `${name}: one line`)
  }
})

t.test('secrets never appear in error messages', async (t) => {
  const secrets = { password: 'hunter2-secret', pin: '98765-secret', network: 'net-secret-xyz' }
  const cases: Raw[] = [
    withChange((r) => { r.broker.password = secrets.password; r.broker.url = 'ftp://x' }),
    withChange((r) => { r.userPin = `${secrets.pin}\n` }),
    withChange((r) => { r.networkId = { value: secrets.network } }),
    withChange((r) => { r.broker.password = 42 }),
  ]
  for (const raw of cases) {
    const result = parseConfig(raw, { GWMO_BROKER_PASSWORD: undefined })
    t.equal(result.ok, false)
    if (!result.ok) {
      for (const secret of Object.values(secrets)) t.notMatch(result.error, secret)
    }
  }
  const badPin = parseConfig(withChange((r) => { r.userPin = `${secrets.pin}\n` }), {})
  t.same(badPin, { ok: false, error: 'config: userPin: must not contain control characters' })
})

t.test('loadConfigFile', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))

  const good = join(dir, 'good.json')
  writeFileSync(good, JSON.stringify({ ...minimal(), stateDir: 'state', factoryBootstrap: 'factory.xml' }))
  const loaded = await loadConfigFile(good, {})
  if (!loaded.ok) throw new Error(loaded.error)
  t.equal(loaded.config.stateDir, join(dir, 'state'), 'relative to the file')
  t.equal(loaded.config.factoryBootstrap, join(dir, 'factory.xml'))

  const withBom = join(dir, 'bom.json')
  writeFileSync(withBom, '\uFEFF' + JSON.stringify(minimal()))
  t.equal((await loadConfigFile(withBom, {})).ok, true, 'a byte order mark is tolerated')

  const syntax = join(dir, 'syntax.json')
  writeFileSync(syntax, '{\n  "deviceId": "mac:1",\n  "broker": { "password": "s3cret-value" x }\n}\n')
  const syntaxResult = await loadConfigFile(syntax, {})
  t.same(syntaxResult, { ok: false, error: `config: ${syntax}: invalid JSON at line 3, column 42` })
  if (!syntaxResult.ok) t.notMatch(syntaxResult.error, 's3cret')

  const truncated = join(dir, 'truncated.json')
  writeFileSync(truncated, '{\n  "deviceId": "mac:1",\n')
  const truncatedResult = await loadConfigFile(truncated, {})
  t.equal(truncatedResult.ok, false)
  if (!truncatedResult.ok) t.match(truncatedResult.error, new RegExp(`^config: ${truncated}: invalid JSON at line 3, column 1$`))

  const missing = join(dir, 'missing.json')
  t.same(await loadConfigFile(missing, {}), { ok: false, error: `config: ${missing}: cannot read (ENOENT)` })

  const badKey = join(dir, 'bad-key.json')
  writeFileSync(badKey, JSON.stringify({ ...minimal(), logLevel: 'loud' }))
  t.same(await loadConfigFile(badKey, {}), { ok: false, error: 'config: logLevel: must be one of "debug", "info", "warn", "error"' })
})

t.test('readBrokerTls reads the PEM files and names the key of a missing one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'ca.pem'), 'CA PEM')
  const base = { url: 'mqtts://b', clientId: 'c', keepaliveSeconds: 30 }
  const read = await readBrokerTls({ ...base, ca: join(dir, 'ca.pem') })
  if (!read.ok) throw new Error(read.error)
  t.equal(read.tls.ca?.toString(), 'CA PEM')
  t.equal(read.tls.cert, undefined)
  const missingKey = join(dir, 'device.key')
  t.same(await readBrokerTls({ ...base, cert: join(dir, 'ca.pem'), key: missingKey }), {
    ok: false,
    error: `config: broker.key: cannot read ${missingKey} (ENOENT)`,
  })
})
