// A writer on the real store (journal appends and checkpoints), SIGKILLed at random points of a write load,
// never leaves files that restore to anything but a whole state: the last acknowledged commit, or the one in
// flight, with the tree and the agent state of the same commit. A SIGKILL cannot cut one write(2) short, so
// torn records come from power cuts: store-journal.test.ts cuts a record at every byte offset.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { AgentState } from '../src/session/agent-state.ts'
import { DiskFiles, JournalStore } from '../src/store/index.ts'
import { ManagementTree } from '../src/tree/tree.ts'
import { KILL_FILES, KILL_POLICY, LEAVES, SERVER } from './fixtures/tree/kill-setup.ts'

// Each kill costs a node start (about 0.15 s of CPU): some 30 s on an idle two-core machine, but minutes when
// the machine is shared and oversubscribed, so this file allows itself more than the suite's default.
t.setTimeout(600_000)

const KILLS = 200
/** Writers killed side by side, each on its own directory: most of a kill's cost is starting node. */
const LANES = 2

interface LaneResult {
  /** Running estimate of one commit cycle of the writer, in milliseconds. */
  cycleMs: number
  problems: string[]
  generation: number
  old: number
  inFlight: number
  /** Kills that left a torn journal tail, or a checkpoint half-written (its temporary file). */
  tornTails: number
  tornCheckpoints: number
}

/** What a restart finds in `dir`: the tree's generation and leaves, and the generation of the queued alert. */
async function restart(dir: string, lane: LaneResult): Promise<{ generation: number; leaves: number; alert: string } | string> {
  const tornCheckpoint = existsSync(join(dir, `.${KILL_FILES.checkpoint}.tmp`))
  const warnings: string[] = []
  const store = new JournalStore(new DiskFiles(dir, KILL_FILES), { policy: KILL_POLICY, warn: (line) => warnings.push(line) })
  const opened = await ManagementTree.open(store, { factory: () => ({ error: 'nothing stored' }) })
  if (!opened.ok) return opened.error
  const state = await AgentState.open(store, () => new Uint8Array(32))
  if (!state.ok) return state.error
  if (tornCheckpoint) lane.tornCheckpoints++
  if (warnings.length > 0) lane.tornTails++
  const alerts = state.state.pendingAlerts(SERVER)
  return {
    generation: Number(opened.tree.get('./Vendor/Generation', 'device').value?.data),
    leaves: (opened.tree.children('./Vendor')?.length ?? 0) - 1,
    alert: alerts.map((a) => a.alert.data).join(','),
  }
}

/** Starts the writer on `dir`, kills it at a random point, and checks what the directory restores to. */
async function killOnce(writer: string, dir: string, env: NodeJS.ProcessEnv, acknowledged: number, lane: LaneResult, label: string): Promise<number | undefined> {
  // Kill after 1–3 acknowledged commits, plus a random part of one commit cycle (as the lane last measured it),
  // so that kills land at varied points of the append and sync, or of a checkpoint's write, sync and rename.
  const wantLines = 1 + Math.floor(Math.random() * 3)
  const child = spawn(process.execPath, [writer, dir, String(wantLines + 1)], { stdio: ['ignore', 'pipe', 'pipe'], env })
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
  const restored = await restart(dir, lane)
  if (typeof restored === 'string') {
    lane.problems.push(`${label}: ${restored}`)
    return undefined
  }
  const { generation, leaves, alert } = restored
  if (generation !== lastAck && generation !== lastAck + 1) {
    lane.problems.push(`${label}: restored generation ${generation}, but ${lastAck} was acknowledged`)
    return undefined
  }
  if (leaves !== (generation % 2 === 1 ? LEAVES : 0)) {
    lane.problems.push(`${label}: generation ${generation} restored with ${leaves} leaves`)
    return undefined
  }
  if (alert !== (generation === 0 ? '' : String(generation))) {
    lane.problems.push(`${label}: generation ${generation} restored with the alert of '${alert}'`)
    return undefined
  }
  if (generation === lastAck) lane.old++
  else lane.inFlight++
  return generation
}

t.test('SIGKILL during journal appends and checkpoints: every restart restores a whole, acknowledged state', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'gwmo-kill-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  // The child runs the real modules, bundled, under plain node (without the test runner's preloads).
  const writer = join(root, 'kill-writer.mjs')
  const here = dirname(fileURLToPath(import.meta.url))
  await build({
    entryPoints: [join(here, 'fixtures/tree/kill-writer.ts')],
    outfile: writer, bundle: true, platform: 'node', format: 'esm', target: 'node18', logLevel: 'warning',
  })
  const env = { ...process.env }
  delete env.NODE_OPTIONS

  const lanes = await Promise.all(Array.from({ length: LANES }, async (_, index): Promise<LaneResult> => {
    const lane: LaneResult = { cycleMs: 10, problems: [], generation: 0, old: 0, inFlight: 0, tornTails: 0, tornCheckpoints: 0 }
    const dir = join(root, `lane-${index}`)
    mkdirSync(dir)
    for (let kill = 0; kill < KILLS / LANES && lane.problems.length === 0; kill++) {
      const generation = await killOnce(writer, dir, env, lane.generation, lane, `lane ${index} kill ${kill}`)
      if (generation !== undefined) lane.generation = generation
    }
    return lane
  }))

  t.same(lanes.flatMap((lane) => lane.problems), [], 'every restart restored whole, never older than acknowledged')
  const sum = (key: 'old' | 'inFlight' | 'tornTails' | 'tornCheckpoints') => lanes.reduce((n, lane) => n + lane[key], 0)
  t.ok(lanes.every((lane) => lane.generation > 0), 'every writer made progress')
  t.comment(`${KILLS} kills: ${sum('old')} left the acknowledged state, ${sum('inFlight')} the one in flight; ` +
    `${sum('tornTails')} left a torn journal tail, ${sum('tornCheckpoints')} a half-written checkpoint`)
})
