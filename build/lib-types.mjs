// The library entry's types (dist/lib.d.ts): the declarations of src/lib.ts and of the modules its types come
// from, and nothing of the rest of the agent. The compiler emits them without checking (`npm run typecheck`
// does that); the files reached from lib.d.ts go to dist/types/, their `.ts` imports made `.js`.
import ts from 'typescript'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { root } from './esbuild-options.mjs'

const src = join(root, 'src')
const outDir = join(root, 'dist', 'types')
const entry = resolve(outDir, 'lib.d.ts')
const IMPORT = /(from\s+|import\()'(\.\.?\/[^']+)\.ts'/g

/**
 * The declarations of `roots` alone, imports left unresolved: emitting them needs nothing else (each export of
 * theirs has its type written out), and the whole agent need not be read.
 */
function emitDeclarations(roots) {
  const emitted = new Map()
  const program = ts.createProgram(roots, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    allowImportingTsExtensions: true,
    declaration: true,
    emitDeclarationOnly: true,
    noCheck: true,
    noResolve: true,
    noLib: true,
    types: [],
    outDir,
    rootDir: src,
  })
  const result = program.emit(undefined, (file, text) => emitted.set(resolve(file), text))
  if (result.emitSkipped) throw new Error('lib.d.ts: the compiler emitted nothing')
  return emitted
}

/** The declaration files reached from lib.d.ts, and the sources they come from: grown until nothing is missing. */
const roots = [join(src, 'lib.ts')]
let emitted
let wanted
for (;;) {
  emitted = emitDeclarations(roots)
  wanted = [entry]
  for (let i = 0; i < wanted.length; i++) {
    const text = emitted.get(wanted[i])
    if (text === undefined) continue
    for (const [, , spec] of text.matchAll(IMPORT)) {
      const next = resolve(dirname(wanted[i]), spec + '.d.ts')
      if (!wanted.includes(next)) wanted.push(next)
    }
  }
  const missing = wanted.filter((file) => !emitted.has(file)).map((file) => join(src, relative(outDir, file)).replace(/\.d\.ts$/, '.ts'))
  if (missing.length === 0) break
  const unknown = missing.find((file) => roots.includes(file))
  if (unknown !== undefined) throw new Error(`lib.d.ts: no declarations for ${relative(root, unknown)}`)
  roots.push(...missing)
}
rmSync(outDir, { recursive: true, force: true })
for (const file of wanted) {
  const text = emitted.get(file).replace(IMPORT, "$1'$2.js'")
  // lib.d.ts itself sits in dist/, beside the bundle it describes; the rest under dist/types/.
  const out = file === entry ? join(root, 'dist', 'lib.d.ts') : file
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, file === entry ? text.replace(/'\.\/(?=[^']+\.js')/g, "'./types/") : text)
}
