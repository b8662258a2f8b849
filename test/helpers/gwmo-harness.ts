/**
 * Small pieces the GwMO tests share: a fake clock driven by hand, a logger that keeps its lines, and a
 * memory-backed agent state.
 */
import { createLogger, type Logger } from '../../src/log.ts'
import { AgentState } from '../../src/session/agent-state.ts'
import { MemoryStore } from '../../src/tree/memory-store.ts'

export interface FakeClock {
  now(): number
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
  /** Moves time on, running every timer that falls due, in order. */
  advance(ms: number): void
  /** Timers still waiting. */
  readonly pending: number
}

export function fakeClock(start = 1_700_000_000_000): FakeClock {
  let now = start
  let seq = 0
  const timers = new Map<number, { at: number; callback: () => void }>()
  return {
    now: () => now,
    setTimeout(callback, ms) {
      const id = ++seq
      timers.set(id, { at: now + Math.max(0, ms), callback })
      return id
    },
    clearTimeout(handle) {
      timers.delete(handle as number)
    },
    advance(ms) {
      const until = now + ms
      for (;;) {
        let next: [number, { at: number; callback: () => void }] | undefined
        for (const entry of timers) if (entry[1].at <= until && (next === undefined || entry[1].at < next[1].at)) next = entry
        if (next === undefined) break
        timers.delete(next[0])
        now = next[1].at
        next[1].callback()
      }
      now = until
    },
    get pending() {
      return timers.size
    },
  }
}

export interface CapturedLog {
  logger: Logger
  lines: Array<Record<string, unknown>>
  /** Every line as text, for "this never appears" checks. */
  text(): string
}

export function captureLog(level: 'debug' | 'info' = 'debug'): CapturedLog {
  const lines: Array<Record<string, unknown>> = []
  const logger = createLogger({ level, write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) })
  return { logger, lines, text: () => lines.map((l) => JSON.stringify(l)).join('\n') }
}

export async function memoryState(store = new MemoryStore()): Promise<{ state: AgentState; store: MemoryStore }> {
  const opened = await AgentState.open(store, (n) => new Uint8Array(n).fill(7))
  if (!opened.ok) throw new Error(opened.error)
  return { state: opened.state, store }
}

/** Lets queued promise callbacks run (the monitor's poll loop chains a few). */
export async function settle(rounds = 20): Promise<void> {
  for (let k = 0; k < rounds; k++) await Promise.resolve()
}
