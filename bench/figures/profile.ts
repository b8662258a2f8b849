/**
 * Where the agent's time goes in the exchanges the bench times: a V8 CPU profile (`--cpu-prof`) of an unminified
 * build of the same sources (`agent-profile.js`: esbuild marks each module's code with its path), taken over the
 * detections and DM sessions alone, each sample charged to the stage of the innermost frame from the agent's own
 * modules or its dependencies (Node's internals count for whoever called them: an fsync for the store, a socket
 * write for MQTT); and `strace -c` of the same process over the same window for the system calls.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** The stages, in the order they are printed. */
export const STAGES = [
  'decode and encode (src/codec)',
  'authenticate (src/auth)',
  'tree (src/tree)',
  'persist (src/store)',
  'session and GwMO (src/session, src/gwmo)',
  'MQTT (src/transport, MQTT.js)',
  'runtime and log (src/runtime, src/log.ts, …)',
  'Node and V8 outside the above (event loop, timers)',
  'garbage collection',
] as const
export type Stage = (typeof STAGES)[number]

export function stageOfModule(path: string): Stage {
  if (path.includes('src/codec/')) return STAGES[0]
  if (path.includes('src/auth/')) return STAGES[1]
  if (path.includes('src/tree/')) return STAGES[2]
  if (path.includes('src/store/')) return STAGES[3]
  if (path.includes('src/session/') || path.includes('src/gwmo/')) return STAGES[4]
  if (path.includes('src/transport/') || path.includes('node_modules/')) return STAGES[5]
  return STAGES[6]
}

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  samples: number[]
  timeDeltas: number[]
}

/** The module each line of the unminified bundle belongs to: esbuild's `// path` line before each module. */
function moduleLines(bundle: string): Array<{ line: number; path: string }> {
  const starts: Array<{ line: number; path: string }> = []
  bundle.split('\n').forEach((text, line) => {
    const marker = /^\/\/ (\S+\.(?:ts|js|cjs|mjs|json))$/.exec(text)
    if (marker) starts.push({ line, path: marker[1]! })
  })
  return starts
}

function moduleAt(starts: Array<{ line: number; path: string }>, line: number): string | undefined {
  let lo = 0
  let hi = starts.length - 1
  let found: string | undefined
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (starts[mid]!.line <= line) {
      found = starts[mid]!.path
      lo = mid + 1
    } else hi = mid - 1
  }
  return found
}

/**
 * CPU milliseconds per stage in the profile's samples between `fromUs` and `toUs` (the profile's clock is the
 * monotonic one `process.hrtime` reads, in microseconds).
 */
export function stagesOfProfile(profile: CpuProfile, bundlePath: string, fromUs: number, toUs: number): Map<Stage, number> {
  const starts = moduleLines(readFileSync(bundlePath, 'utf8'))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const stageCache = new Map<number, Stage | null>()
  const stageOf = (id: number): Stage | null => {
    const cached = stageCache.get(id)
    if (cached !== undefined) return cached
    const node = byId.get(id)!
    const name = node.callFrame.functionName
    let stage: Stage | null
    if (name === '(idle)') stage = null
    else if (name === '(garbage collector)') stage = STAGES[8]
    else if (node.callFrame.url.endsWith(bundlePath.slice(bundlePath.lastIndexOf('/'))) && node.callFrame.lineNumber >= 0) {
      const module = moduleAt(starts, node.callFrame.lineNumber)
      stage = module === undefined ? STAGES[6] : stageOfModule(module)
    } else {
      const up = parent.get(id)
      const inherited = up === undefined ? STAGES[7] : stageOf(up)
      // Only the root and V8's own entries have nothing above them in the agent: they are Node's.
      stage = inherited === null ? STAGES[7] : inherited
    }
    stageCache.set(id, stage)
    return stage
  }
  const totals = new Map<Stage, number>(STAGES.map((s) => [s, 0]))
  let at = profile.startTime
  for (let k = 0; k < profile.samples.length; k++) {
    const delta = profile.timeDeltas[k] ?? 0
    at += delta
    if (at < fromUs || at > toUs) continue
    const stage = stageOf(profile.samples[k]!)
    if (stage !== null) totals.set(stage, totals.get(stage)! + delta / 1000)
  }
  return totals
}

/** The profile a `--cpu-prof-dir` holds once the process has exited. */
export function readProfile(dir: string): CpuProfile {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
  if (file === undefined) throw new Error(`no CPU profile in ${dir}`)
  return JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile
}

export function profileDir(): string {
  return mkdtempSync(join(tmpdir(), 'gwmo-bench-prof-'))
}

/** Now on the clock of the profile's timestamps. */
export const monotonicUs = () => Number(process.hrtime.bigint() / 1000n)

/** `strace -c -f` attached to `pid` until `stop()`: the summary's rows (calls, seconds) by system call. */
export function straceCounts(pid: number): { stop(): Promise<Array<{ call: string; calls: number; seconds: number }>> } {
  const out = join(mkdtempSync(join(tmpdir(), 'gwmo-bench-strace-')), 'summary.txt')
  const child = spawn('strace', ['-c', '-f', '-q', '-o', out, '-p', String(pid)], { stdio: 'ignore' })
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()))
  return {
    async stop() {
      child.kill('SIGINT')
      await exited
      const rows: Array<{ call: string; calls: number; seconds: number }> = []
      for (const line of readFileSync(out, 'utf8').split('\n')) {
        // % time, seconds, usecs/call, calls, [errors], syscall
        const fields = line.trim().split(/\s+/)
        if (fields.length < 5 || !/^\d+\.\d+$/.test(fields[0]!) || fields[fields.length - 1] === 'total') continue
        rows.push({ call: fields[fields.length - 1]!, calls: Number(fields[3]), seconds: Number(fields[1]) })
      }
      return rows.sort((a, b) => b.seconds - a.seconds)
    },
  }
}
