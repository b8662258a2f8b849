/**
 * The same bundle under Bun: the demo's whole GwMO story (binding.md §4) with `dist/gwmo-agent.js` run by Bun (the
 * `bun` dev dependency) instead of Node, on the demo's embedded broker. Built by `npm test` before tap runs.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const DEMO = join(ROOT, 'dist', 'demo.js')
const BUN = join(ROOT, 'node_modules', '.bin', 'bun')
const STEP_COUNT = 9

t.test('every step of the demo with the agent running under Bun', (t) => {
  t.ok(existsSync(BUN), 'Bun is installed as a dev dependency (npm ci)')
  const bunVersion = spawnSync(BUN, ['--version'], { encoding: 'utf8' }).stdout.trim()
  t.match(bunVersion, /^\d+\.\d+\.\d+/, 'bun --version answers')

  const run = spawnSync(process.execPath, [DEMO, '--verbose', '--runtime', BUN], {
    encoding: 'utf8',
    timeout: 150_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  })
  t.equal(run.status, 0, 'exit 0', { stdout: run.stdout.slice(-4000), stderr: run.stderr })
  // The agent's own start line says which runtime runs it: proof the story ran on Bun, not Node.
  t.match(run.stdout, new RegExp(`agent info  started .*runtime=bun ${bunVersion.replace(/\./g, '\\.')}`), 'the agent ran under Bun')
  t.notMatch(run.stdout, /runtime=node /, 'and never under Node')
  for (let n = 1; n <= STEP_COUNT; n++) t.match(run.stdout, new RegExp(`^   ✓ step ${n}: `, 'm'), `step ${n} done`)
  t.match(run.stdout, /All 9 steps done/)
  t.end()
})
