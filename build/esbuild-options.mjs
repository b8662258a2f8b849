// The esbuild options every Node bundle of the project shares: the agent, its floor in the bench, the demo,
// the peers and the bench programs. One place, so the floor is always built exactly like the agent.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/**
 * MQTT.js reads its version from its whole package.json (lib/shared.js): the bundle gets the version alone, not
 * the manifest's 3.6 KB of fields no one reads.
 */
const mqttVersionOnly = {
  name: 'mqtt-version-only',
  setup(build) {
    build.onResolve({ filter: /^\.\.\/\.\.\/package\.json$/ }, (args) =>
      /[\\/]mqtt[\\/]build[\\/]lib$/.test(args.resolveDir) ? { path: 'mqtt-version', namespace: 'mqtt-version-only' } : undefined)
    build.onLoad({ filter: /.*/, namespace: 'mqtt-version-only' }, () => {
      const { version } = JSON.parse(readFileSync(join(root, 'node_modules', 'mqtt', 'package.json'), 'utf8'))
      return { contents: JSON.stringify({ version }), loader: 'json' }
    })
  },
}

/** CommonJS for Node 18: esbuild's ESM output breaks on mqtt's dynamic requires. */
export const nodeBundle = Object.freeze({
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node18',
  legalComments: 'none',
  // Node 18+ ships the streams that `readable-stream` copies for browsers, and the two browser-only helpers
  // below are replaced by what Node has: together about a third of the bundle. MQTT.js's topic aliases, which
  // the agent never turns on, get the small LRU cache they need instead of the lru-cache package, and the packet
  // copy MQTT.js makes before storing a packet a copier of packets instead of the general one (rfdc).
  alias: {
    'readable-stream': 'node:stream',
    'worker-timers': join(root, 'build', 'shims', 'worker-timers.cjs'),
    debug: join(root, 'build', 'shims', 'debug.cjs'),
    'lru-cache': join(root, 'build', 'shims', 'lru-cache.cjs'),
    'rfdc/default': join(root, 'build', 'shims', 'rfdc-default.cjs'),
  },
  plugins: [mqttVersionOnly],
  logLevel: 'warning',
})

/** The shipped agent: the shared options, minified, as an executable script. */
export const agentBundle = Object.freeze({
  ...nodeBundle,
  minify: true,
  banner: { js: '#!/usr/bin/env node' },
})
