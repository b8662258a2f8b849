// Bundles src/ into one CommonJS file: esbuild's ESM output breaks on mqtt's dynamic requires.
import { build } from 'esbuild'
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { join } from 'node:path'
import { buildAgentFile } from './agent-file.mjs'
import { nodeBundle, root } from './esbuild-options.mjs'

const outfile = join(root, 'dist', 'gwmo-agent.js')
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

/**
 * The agent ships to constrained devices: past this many gzip bytes the build fails. 92 KB is a minimal MQTT.js
 * client on `mqtt/lib/client` + `net` built without our aliases (about 72 KB gzip) plus 20 KB for the
 * agent's own code. With the aliases that floor is far smaller; `npm run bench` measures it built exactly like
 * the agent and prints how far above it the agent is.
 */
const GZIP_BUDGET_BYTES = 92 * 1024

mkdirSync(join(root, 'dist'), { recursive: true })
// The package is "type": "module"; the bundle is CommonJS, so dist/ gets its own package scope.
writeFileSync(join(root, 'dist', 'package.json'), JSON.stringify({ type: 'commonjs' }) + '\n')

await buildAgentFile({
  entryPoints: [join(root, 'src', 'main.ts')],
  outfile,
  define: { 'process.env.GWMO_AGENT_VERSION': JSON.stringify(version) },
})

const bytes = readFileSync(outfile)
const gzipBytes = gzipSync(bytes).length
console.log(`dist/gwmo-agent.js: ${(bytes.length / 1024).toFixed(1)} KB raw, ${(gzipBytes / 1024).toFixed(1)} KB gzip (budget ${GZIP_BUDGET_BYTES / 1024} KB)`)
if (gzipBytes > GZIP_BUDGET_BYTES) {
  console.error(`dist/gwmo-agent.js is ${gzipBytes - GZIP_BUDGET_BYTES} bytes gzip over its budget`)
  process.exit(1)
}

// The library entry (`require('gwmo-agent')`, src/lib.ts): a file of its own, so that the agent's bundle and its
// budget stay as they are; a program that embeds the agent bundles or loads it as it likes. Its types beside it.
await build({
  ...nodeBundle,
  entryPoints: [join(root, 'src', 'lib.ts')],
  outfile: join(root, 'dist', 'lib.js'),
  define: { 'process.env.GWMO_AGENT_VERSION': JSON.stringify(version) },
})
await import('./lib-types.mjs')

// The fleet simulator (`gwmo-agent simulate`, for gateway and server vendors' test benches): a file of its own
// that the agent loads from beside itself (src/main.ts), so devices neither ship nor parse it. It carries its
// own copy of the engine; the .deb, a device package, leaves it out.
await build({
  ...nodeBundle,
  minify: true,
  entryPoints: [join(root, 'src', 'runtime', 'simulate-cli.ts')],
  outfile: join(root, 'dist', 'gwmo-agent-simulate.js'),
  define: { 'process.env.GWMO_AGENT_VERSION': JSON.stringify(version) },
})

// `gwmo-agent ddf` (binding.md §8): an integrator's occasional command, a file of its own that the agent loads from
// beside itself only for that command (src/main.ts), so that the agent's bundle and its budget carry none of it.
// The .deb ships it beside the agent.
await build({
  ...nodeBundle,
  minify: true,
  entryPoints: [join(root, 'src', 'runtime', 'ddf-cli.ts')],
  outfile: join(root, 'dist', 'gwmo-agent-ddf.js'),
})

// The demo (`npm run demo`) and the peers' command line: test programs, bundled the same way (CommonJS for
// Node 18, Node's own streams) so that they run from dist/ on a fresh clone with nothing but `npm ci`. Not
// minified: their stack traces are read by people trying the project.
const programs = [
  { entry: join(root, 'test', 'peers', 'demo.ts'), out: join(root, 'dist', 'demo.js') },
  { entry: join(root, 'test', 'peers', 'cli.ts'), out: join(root, 'dist', 'peers.js') },
]
await Promise.all(
  programs.map(({ entry, out }) =>
    build({ ...nodeBundle, entryPoints: [entry], outfile: out, banner: { js: '#!/usr/bin/env node' } }),
  ),
)
