// A writer SIGKILLed at random points never leaves a file that restores to anything but a whole tree: the last
// acknowledged generation, or the one whose save was in flight.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { AtomicFileStore } from '../src/tree/file-store.ts'
import { restoreTree } from '../src/tree/persistence.ts'

// Each kill costs a node start (about 0.15 s of CPU): some 30 s on an idle two-core machine, but minutes when
// the machine is shared and oversubscribed, so this file allows itself more than the suite's default.
t.setTimeout(600_000)

const KILLS = 200
/** Writers killed side by side, each on its own file: most of a kill's cost is starting node. */
const LANES = 2

interface LaneResult {
  /** Running estimate of one save cycle of the writer, in milliseconds. */
  cycleMs: number
  problems: string[]
  generation: number
  old: number
  inFlight: number
}

/** Starts the writer on `file`, kills it at a random point, and checks what the file restores to. */
async function killOnce(writer: string, file: string, env: NodeJS.ProcessEnv, acknowledged: number, lane: LaneResult, label: string): Promise<number | undefined> {
  // Kill after 1–3 acknowledged saves, plus a random part of one save cycle (as the lane last measured it), so
  // that kills land at varied points of the write, fsync and rename sequence of the next save.
  const wantLines = 1 + Math.floor(Math.random() * 3)
  const child = spawn(process.execPath, [writer, file, String(wantLines + 1)], { stdio: ['ignore', 'pipe', 'pipe'], env })
  let out = ''
  let err = ''
  let fired = false
  let lastLineAt = 0
  child.stdout.on('data', (chunk: Buffer) => {
    const now = performance.now()
    const before = out.split('\n').length - 1
    out += chunk.toString()
    const lines = out.split('\n').length - 1
    if (before > 0 && lines > before) lane.cycleMs = (lane.cycleMs * 3 + (now - lastLineAt) / (lines - before)) / 4
    lastLineAt = now
    if (!fired && lines >= wantLines) {
      fired = true
      setTimeout(() => child.kill('SIGKILL'), Math.random() * lane.cycleMs * 1.2)
    }
  })
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
  if (code !== null) {
    lane.problems.push(`${label}: the writer exited by itself (${code}): ${err.trim()}`)
    return undefined
  }
  const acks = out.split('\n').filter((line) => line !== '').map(Number)
  const lastAck = acks.length > 0 ? acks[acks.length - 1]! : acknowledged
  if (!existsSync(file)) {
    if (lastAck !== 0) lane.problems.push(`${label}: the file vanished after generation ${lastAck} was acknowledged`)
    return 0
  }
  const restored = restoreTree(new Uint8Array(readFileSync(file)))
  if (!restored.ok) {
    lane.problems.push(`${label}: ${restored.error}`)
    return undefined
  }
  const generation = Number(restored.tree.get('./Vendor/Generation', 'device').value?.data)
  const nodes = restored.tree.children('./Vendor')?.length
  if (generation !== lastAck && generation !== lastAck + 1) {
    lane.problems.push(`${label}: restored generation ${generation}, but ${lastAck} was acknowledged`)
    return undefined
  }
  if (nodes !== (generation % 2 === 1 ? 301 : 3)) {
    lane.problems.push(`${label}: generation ${generation} restored with ${nodes} nodes`)
    return undefined
  }
  if (generation === lastAck) lane.old++
  else lane.inFlight++
  return generation
}

t.test('SIGKILL during saves: every restore gives a whole old or new tree', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-kill-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // The child runs the real modules, bundled, under plain node (without the test runner's preloads).
  const writer = join(dir, 'kill-writer.mjs')
  const here = dirname(fileURLToPath(import.meta.url))
  await build({
    entryPoints: [join(here, 'fixtures/tree/kill-writer.ts')],
    outfile: writer, bundle: true, platform: 'node', format: 'esm', target: 'node18', logLevel: 'warning',
  })
  const env = { ...process.env }
  delete env.NODE_OPTIONS

  const lanes = await Promise.all(Array.from({ length: LANES }, async (_, index): Promise<LaneResult> => {
    const lane: LaneResult = { cycleMs: 10, problems: [], generation: 0, old: 0, inFlight: 0 }
    const file = join(dir, `tree-${index}.bin`)
    for (let kill = 0; kill < KILLS / LANES && lane.problems.length === 0; kill++) {
      const generation = await killOnce(writer, file, env, lane.generation, lane, `lane ${index} kill ${kill}`)
      if (generation !== undefined) lane.generation = generation
    }
    // A last load removes the temporary file the last kill may have left, and finds the tree whole.
    const final = await new AtomicFileStore(file).load()
    if (final === undefined || !restoreTree(final).ok) lane.problems.push(`lane ${index}: the final load failed`)
    if (existsSync(join(dir, `.tree-${index}.bin.tmp`))) lane.problems.push(`lane ${index}: a temp file survived a load`)
    return lane
  }))

  t.same(lanes.flatMap((lane) => lane.problems), [], 'every file restored whole, never older than acknowledged')
  const old = lanes.reduce((n, lane) => n + lane.old, 0)
  const inFlight = lanes.reduce((n, lane) => n + lane.inFlight, 0)
  t.ok(lanes.every((lane) => lane.generation > 0), 'every writer made progress')
  t.comment(`${KILLS} kills: ${old} left the acknowledged tree, ${inFlight} the one in flight`)
})
