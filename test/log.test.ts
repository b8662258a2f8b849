// The logger: one JSON object a line, levels, children carrying their parents' bindings, secrets redacted.
import t from 'tap'
import { createLogger, silentLogger } from '../src/log.ts'

function capture(level: 'debug' | 'info' | 'warn' | 'error' | 'silent' = 'debug') {
  const lines: Record<string, unknown>[] = []
  const logger = createLogger({ level, write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>), now: () => new Date(0) }, { deviceId: 'mac:02-00-00-00-00-01' })
  return { logger, lines }
}

t.test('a line holds the time, the level, the bindings, the fields and the message', async (t) => {
  const { logger, lines } = capture()
  logger.info('started', { firstStart: true })
  t.same(lines, [{ time: '1970-01-01T00:00:00.000Z', level: 'info', deviceId: 'mac:02-00-00-00-00-01', firstStart: true, msg: 'started' }])
})

t.test('lines below the level are dropped', async (t) => {
  const { logger, lines } = capture('warn')
  logger.debug('a')
  logger.info('b')
  logger.warn('c')
  logger.error('d')
  t.same(lines.map((l) => [l.level, l.msg]), [['warn', 'c'], ['error', 'd']])
  const quiet = capture('silent')
  quiet.logger.error('never')
  t.same(quiet.lines, [])
})

t.test('a child adds its bindings to its parent\'s, and leaves the parent as it was', async (t) => {
  const { logger, lines } = capture()
  const session = logger.child({ module: 'session' })
  const party = session.child({ party: 'http://dms.example.com' })
  party.warn('one')
  session.warn('two')
  logger.warn('three')
  session.child({ module: 'gwmo' }).warn('four')
  t.same(lines.map(({ time: _, level: __, ...rest }) => rest), [
    { deviceId: 'mac:02-00-00-00-00-01', module: 'session', party: 'http://dms.example.com', msg: 'one' },
    { deviceId: 'mac:02-00-00-00-00-01', module: 'session', msg: 'two' },
    { deviceId: 'mac:02-00-00-00-00-01', msg: 'three' },
    { deviceId: 'mac:02-00-00-00-00-01', module: 'gwmo', msg: 'four' },
  ])
})

t.test('secrets are redacted at any depth, in bindings and fields alike', async (t) => {
  const { logger, lines } = capture()
  logger.child({ password: 'p' }).info('x', { nested: { clientNonce: 'n', ok: 1 }, bytes: new Uint8Array(3), error: new Error('boom') })
  t.same(lines[0], {
    time: '1970-01-01T00:00:00.000Z',
    level: 'info',
    deviceId: 'mac:02-00-00-00-00-01',
    password: '[redacted]',
    nested: { clientNonce: '[redacted]', ok: 1 },
    bytes: '<3 bytes>',
    error: { name: 'Error', message: 'boom' },
    msg: 'x',
  })
})

t.test('the silent logger and its children write nothing', async (t) => {
  t.doesNotThrow(() => silentLogger.child({ a: 1 }).error('nothing'))
})
