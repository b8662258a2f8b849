// The esbuild options every Node bundle of the project shares: the agent, its floor in the bench, the demo,
// the peers and the bench programs. One place, so the floor is always built exactly like the agent.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** CommonJS for Node 18: esbuild's ESM output breaks on mqtt's dynamic requires. */
export const nodeBundle = Object.freeze({
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node18',
  legalComments: 'none',
  // Node 18+ ships the streams that `readable-stream` copies for browsers, and the two browser-only helpers
  // below are replaced by what Node has: together about a third of the bundle. MQTT.js's topic aliases, which
  // the agent never turns on, get the small LRU cache they need instead of the lru-cache package.
  alias: {
    'readable-stream': 'node:stream',
    'worker-timers': join(root, 'build', 'shims', 'worker-timers.cjs'),
    debug: join(root, 'build', 'shims', 'debug.cjs'),
    'lru-cache': join(root, 'build', 'shims', 'lru-cache.cjs'),
  },
  logLevel: 'warning',
})

/** The shipped agent: the shared options, minified, as an executable script. */
export const agentBundle = Object.freeze({
  ...nodeBundle,
  minify: true,
  banner: { js: '#!/usr/bin/env node' },
})
