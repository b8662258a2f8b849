// The library entry's types (dist/lib.d.ts): the declarations of src/lib.ts and of the modules its types come
// from, and nothing of the rest of the agent. The compiler emits them without checking (`npm run typecheck`
// does that); the files reached from lib.d.ts go to dist/types/, their `.ts` imports made `.js`.
import ts from 'typescript'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { root } from './esbuild-options.mjs'

const src = join(root, 'src')
const emitted = new Map()
const program = ts.createProgram([join(src, 'lib.ts')], {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  allowImportingTsExtensions: true,
  declaration: true,
  emitDeclarationOnly: true,
  noCheck: true,
  skipLibCheck: true,
  strict: true,
  types: ['node'],
  outDir: join(root, 'dist', 'types'),
  rootDir: src,
})
const result = program.emit(undefined, (file, text) => emitted.set(resolve(file), text))
if (result.emitSkipped) throw new Error('lib.d.ts: the compiler emitted nothing')

const IMPORT = /(from\s+|import\()'(\.\.?\/[^']+)\.ts'/g
const entry = resolve(root, 'dist', 'types', 'lib.d.ts')
const wanted = [entry]
for (let i = 0; i < wanted.length; i++) {
  const file = wanted[i]
  const text = emitted.get(file)
  if (text === undefined) throw new Error(`lib.d.ts: no declarations for ${relative(root, file)}`)
  for (const [, , spec] of text.matchAll(IMPORT)) {
    const next = resolve(dirname(file), spec + '.d.ts')
    if (!wanted.includes(next)) wanted.push(next)
  }
}
for (const file of wanted) {
  const text = emitted.get(file).replace(IMPORT, "$1'$2.js'")
  // lib.d.ts itself sits in dist/, beside the bundle it describes; the rest under dist/types/.
  const out = file === entry ? join(root, 'dist', 'lib.d.ts') : file
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, file === entry ? text.replace(/'\.\/(?=[^']+\.js')/g, "'./types/") : text)
}
