// The library entry's types (dist/lib.d.ts, built beside dist/lib.js): a TypeScript program that embeds the agent
// compiles against them under strict settings, and a callback of the wrong shape does not.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const LIB = join(ROOT, 'dist', 'lib.js')

const PROGRAM = `
import { createAgent, SyncMLStatusError, type CallInfo, type ObjectDefinition, type Value } from ${JSON.stringify(LIB)}

const agent = createAgent({ deviceId: 'mac:01', broker: { url: 'mqtt://localhost' } }, { logLevel: 'warn', log: (line: string) => void line })
const temperature: ObjectDefinition = {
  format: 'int',
  acl: 'Get=*',
  get: async (call: CallInfo): Promise<Value> => (call.signal.aborted ? '0' : '45000'),
}
agent.defineObject('./Vendor/Sensors/CpuTemp', temperature)
agent.defineObject('./Vendor/Ops/Restart', {
  acl: 'Exec=http://dms.example.com',
  exec: async (data, call) => {
    if (call.correlator === undefined) throw new SyncMLStatusError(400, 'a correlator is needed')
    return data === undefined ? 200 : 202
  },
  replace: async (value: Value) => void value,
})
const started: Promise<void> = agent.start()
void started.then(() => agent.stop())
// @ts-expect-error an exec resolves to a status code
agent.defineObject('./Vendor/Ops/Bad', { exec: async () => 'done' })
// @ts-expect-error a format the tree does not know
agent.defineObject('./Vendor/Ops/Odd', { format: 'text' })
`

t.test('a strict TypeScript program compiles against dist/lib.d.ts', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { main: string; types: string; exports: Record<string, Record<string, string>> }
  t.same([pkg.main, pkg.types, pkg.exports['.']], ['dist/lib.js', 'dist/lib.d.ts', { types: './dist/lib.d.ts', default: './dist/lib.js' }])
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-lib-types-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'program.ts')
  writeFileSync(file, PROGRAM)
  const program = ts.createProgram([file], {
    strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')],
    exactOptionalPropertyTypes: true,
  })
  const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
  t.same(problems, [], 'no errors, and each @ts-expect-error met its error')
  t.ok(program.getSourceFiles().some((f) => f.fileName === join(ROOT, 'dist', 'lib.d.ts')), 'the types came from dist/lib.d.ts')
})
