/**
 * `npm run demo` as a newcomer runs it: `node dist/demo.js` (built by `npm test` before tap runs; a single run of
 * this file needs `npm run build` first), on its embedded broker and on a real one (`--broker`), and once with a
 * fault planted in a step, which must stop the demo there with a non-zero exit that names the step.
 */
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startMosquitto } from './helpers/mosquitto.ts'
import { parseDemoArgs } from './peers/demo.ts'

const DEMO = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'demo.js')
const STEP_COUNT = 9

interface Run {
  code: number | null
  stdout: string
  stderr: string
  /** What the demo left in its own TMPDIR after it exited. */
  leftovers: string[]
}

/** Runs the demo with its own TMPDIR, so that what it leaves behind can be seen. */
function runDemo(args: string[]): Promise<Run> {
  const tmp = mkdtempSync(join(tmpdir(), 'gwmo-demo-test-'))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TMPDIR: tmp },
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.once('error', reject)
    child.once('exit', (code) => {
      const leftovers = readdirSync(tmp)
      rmSync(tmp, { recursive: true, force: true })
      resolve({ code, stdout, stderr, leftovers })
    })
  })
}

const stepDone = (n: number) => new RegExp(`^   ✓ step ${n}: `, 'm')
const stepTitle = (n: number) => new RegExp(`^${n}\\. \\S`, 'm')

function assertWholeStory(t: Test, run: Run): void {
  t.equal(run.code, 0, 'exit 0', { stdout: run.stdout, stderr: run.stderr })
  for (let n = 1; n <= STEP_COUNT; n++) {
    t.match(run.stdout, stepTitle(n), `step ${n} announced`)
    t.match(run.stdout, stepDone(n), `step ${n} happened`)
  }
  t.notMatch(run.stdout, /✗/, 'no step failed')
  t.match(run.stdout, new RegExp(`^All ${STEP_COUNT} steps done`, 'm'))
  t.same(run.leftovers, [], 'temporary files removed')
}

t.test('the whole story on the embedded broker, with what went over the wire', async (t) => {
  const run = await runDemo([])
  assertWholeStory(t, run)
  // What each step shows, in words a DM engineer recognises, not JSON.
  t.match(run.stdout, /device → DM Server\s+Cred syncml:auth-md5 · Alert 1201/, 'Package 1 shown')
  t.match(run.stdout, /Alert 1230 Device Detection: GwAddress=192\.168\.1\.254, Share=false/, 'the detection shown')
  t.match(run.stdout, /Alert 1226 BootstrappedDMSList: \[http:\/\/dms\.example\.com\]/, 'the DMS list shown')
  t.match(run.stdout, /Alert 1226 AssociatedGateway: GwAddress=192\.168\.1\.254/, 'the Associated Gateway alert shown')
  t.match(run.stdout, /Alert 1200 \(server-initiated session\)/, 'the notification session shown')
  t.match(run.stdout, /Alert 1226 LocationUpdate: DevAddress=192\.168\.1\.57/, 'the Location Update shown')
  t.match(run.stdout, /bootstrap server → device\s+WBXML \d+ bytes, SEC=NETWORKID/, 'the bootstrap shown')
  t.match(run.stdout, /Results \.\/Vendor\/Demo\/CpuTemp=47312 · Status 200 for Get · Results \.\/Vendor\/Demo\/Uptime=3600\.25 · Status 200 for Replace · Status 202 for Exec/, 'the objects read, written and run')
  t.match(run.stdout, /report-every: 60 → 300 \(a new file renamed over the old one/, 'the setting written atomically')
  t.match(run.stdout, /the result alert: Correlator demo-restart-1, Source \.\/Vendor\/Demo\/Ops\/RestartApp, .* Data 200/, 'the Exec\'s result alert')
  t.notMatch(run.stdout, /[{]"/, 'no JSON in the output')
  t.notMatch(run.stdout, /<SyncML/, 'no SyncML XML in the output')
})

t.test('the same story on a real broker given with --broker', async (t) => {
  // Open: the demo's wire view reads every topic, as no least-privilege ACL lets a client do.
  const broker = await startMosquitto({ open: true })
  t.teardown(() => broker.stop())
  const run = await runDemo(['--broker', broker.url])
  assertWholeStory(t, run)
  t.match(run.stdout, new RegExp(`on ${broker.url.replace(/[.]/g, '\\.')}`), 'says which broker')
})

t.test('--verbose adds the agent log lines', async (t) => {
  const run = await runDemo(['--verbose'])
  t.equal(run.code, 0, 'exit 0', { stdout: run.stdout, stderr: run.stderr })
  t.match(run.stdout, /^ {6}agent info {2}started /m, "the agent's start line")
  t.match(run.stdout, /^ {6}agent info {2}device detection accepted /m, "the agent's detection line")
})

t.test('a planted fault stops the demo at that step, non-zero, naming it', async (t) => {
  const run = await runDemo(['--break-step', '4'])
  t.not(run.code, 0, 'non-zero exit', { stdout: run.stdout })
  for (let n = 1; n <= 3; n++) t.match(run.stdout, stepDone(n), `step ${n} still happened`)
  t.notMatch(run.stdout, stepDone(4), 'step 4 did not')
  t.match(run.stdout, /^ {3}✗ step 4 failed: the DM Server answered 500 to the Associated Gateway alert/m, 'the reason')
  t.notMatch(run.stdout, stepTitle(5), 'the demo stopped there')
  t.match(run.stdout, /^Demo FAILED at step 4: /m, 'the last line names the step')
  t.same(run.leftovers, [], 'temporary files removed after a failure too')
})

t.test('a failing Exec program stops the demo at step 8, after the 202, with the result it reported', async (t) => {
  const run = await runDemo(['--break-step', '8'])
  t.not(run.code, 0, 'non-zero exit', { stdout: run.stdout })
  t.match(run.stdout, stepDone(7), 'step 7 still happened')
  t.match(run.stdout, /Status 202 for Exec/, 'the Exec was accepted')
  t.match(run.stdout, /^ {3}✗ step 8 failed: the program's result is 500, not 200 \(exit 0\)$/m, 'the reason')
  t.same(run.leftovers, [], 'temporary files removed')
})

t.test('a bad option is a usage error', async (t) => {
  const run = await runDemo(['--break-step', '10'])
  t.equal(run.code, 2)
  t.match(run.stderr, /--break-step takes a step number, 1 to 9/)
})

t.test('--time-scale multiplies every wait for a slower (emulated) runtime, and takes only a whole factor', async (t) => {
  const scaled = parseDemoArgs(['--time-scale', '12', '--step-timeout', '5'], () => undefined)
  t.not(scaled, 'help')
  if (scaled !== 'help') {
    t.equal(scaled.timeScale, 12)
    t.equal(scaled.stepTimeoutMs, 60_000, 'the step timeout is 12 × 5 s')
  }
  const plain = parseDemoArgs([], () => undefined)
  if (plain !== 'help') t.equal(plain.timeScale, 1, 'native speed by default')
  for (const bad of ['0', '1.5', '101']) {
    const run = await runDemo(['--time-scale', bad])
    t.equal(run.code, 2, `--time-scale ${bad} is refused`)
    t.match(run.stderr, /--time-scale takes a whole factor, 1 to 100/)
  }
})
