// `npm run bench`: builds the agent bundle (build/bundle.mjs), bundles the floor client with the same esbuild
// options and aliases, bundles the bench programs, and runs them. Arguments are passed on (see bench/README.md).
import { build } from 'esbuild'
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildAgentFile } from '../build/agent-file.mjs'
import { nodeBundle, root } from '../build/esbuild-options.mjs'

const out = mkdtempSync(join(tmpdir(), 'gwmo-bench-build-'))

execFileSync(process.execPath, [join(root, 'build', 'bundle.mjs')], { stdio: 'inherit' })
// The floor: exactly the agent bundle's options (build/bundle.mjs), on its own entry.
await buildAgentFile({ entryPoints: [join(root, 'bench', 'floor', 'client.ts')], outfile: join(out, 'floor.js') })
// The agent unminified, for the CPU profile by stage (bench/figures/profile.ts): esbuild marks each module's code
// with its path, and the function names stay.
await build({
  ...nodeBundle,
  entryPoints: [join(root, 'src', 'main.ts')],
  outfile: join(out, 'agent-profile.js'),
  define: { 'process.env.GWMO_AGENT_VERSION': JSON.stringify('profile') },
})
// The bench programs: not minified, CommonJS for the same reason as the agent's bundle. Test helpers they
// import read `import.meta.url`, which CommonJS lacks: it becomes the bundle's own file URL.
const programs = { 'main.cjs': 'main.ts', 'fleet-runner.cjs': 'fleet/runner.ts', 'fleet-peers.cjs': 'fleet/peers-main.ts' }
await Promise.all(
  Object.entries(programs).map(([file, entry]) =>
    build({
      ...nodeBundle,
      entryPoints: [join(root, 'bench', entry)],
      outfile: join(out, file),
      define: { 'import.meta.url': '__benchFileUrl' },
      banner: { js: "const __benchFileUrl = require('node:url').pathToFileURL(__filename).href;" },
    }),
  ),
)
const main = spawn(process.execPath, [join(out, 'main.cjs'), '--root', root, '--out', out, ...process.argv.slice(2)], { stdio: 'inherit' })
// A signal to this process (not to the whole group, as a terminal's Ctrl-C is) reaches the bench too, which
// then ends its own children: nothing is left running.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => main.kill(signal))
main.on('exit', (code, signal) => {
  process.exitCode = code ?? (signal ? 1 : 0)
})
