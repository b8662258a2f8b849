// The library entry refuses a bad configuration or object definition before anything starts, with one line
// naming the key (the built dist/lib.js, as a program requires it).
import t from 'tap'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const lib = createRequire(import.meta.url)(join(ROOT, 'dist', 'lib.js')) as typeof import('../src/lib.ts')

const CONFIG = { deviceId: 'mac:01-ab-34-ef-69-0c', broker: { url: 'mqtt://127.0.0.1:1' }, stateDir: 'state', factoryBootstrap: 'factory.xml' }

t.test('a configuration the command line would refuse is refused with its key', async (t) => {
  t.throws(() => lib.createAgent({ ...CONFIG, deviceId: 'has space' }, { log: () => undefined }), { name: 'ConfigError', code: 'GWMO_CONFIG', message: /deviceId/ })
  t.throws(() => lib.createAgent({ ...CONFIG, nonsense: 1 }), { code: 'GWMO_CONFIG', message: /nonsense/ })
})

t.test('a bad definition throws InvalidArgumentError naming the path and the key', async (t) => {
  const agent = lib.createAgent(CONFIG, { log: () => undefined })
  const bad: Array<[unknown, RegExp]> = [
    [undefined, /^defineObject \.\/Vendor\/X: definition: must be an object$/],
    [{ format: 'text' }, /: format: unknown format text$/],
    [{ acl: 7 }, /: acl: must be a string$/],
    [{ value: 60 }, /: value: must be a string$/],
    [{ maxBytes: 0 }, /: maxBytes: must be a whole number ≥ 1$/],
    [{ maxBytes: 1.5 }, /: maxBytes: /],
    [{ get: 'cat /tmp/x' }, /: get: must be a function$/],
    [{ exec: {} }, /: exec: must be a function$/],
  ]
  for (const [definition, message] of bad) {
    t.throws(() => agent.defineObject('./Vendor/X', definition as never), { name: 'InvalidArgumentError', code: 'GWMO_INVALID_ARGUMENT', message }, JSON.stringify(definition))
  }
  t.doesNotThrow(() => agent.defineObject('./Vendor/Y', { format: 'int', value: '1', replace: async () => undefined }))
  await agent.stop() // never started: nothing to do
  t.type(lib.SyncMLStatusError, 'function')
  t.equal(new lib.SyncMLStatusError(417, 'busy').status, 417)
})
