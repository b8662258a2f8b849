/**
 * Process start → subscribed, and peak RSS: from spawning the program to its retained `online` on its status
 * topic (published once its subscriptions are granted, by the agent and by the floor alike), then one more
 * second of running, then SIGINT; the peak RSS is GNU time's over that whole life.
 */
import { repeat, summarize, type Summary } from '../lib/stats.ts'
import { run, sleep } from '../lib/processes.ts'
import type { Watcher } from '../lib/watch.ts'

export interface StartFigures {
  startMs: Summary
  peakRssKb: Summary
}

const SETTLE_MS = 1000

export async function measureStart(
  watcher: Watcher,
  statusTopic: string,
  command: string,
  args: string[],
  options: { runs: number; warmup: number; cwd?: string; onlineTimeoutMs?: number },
): Promise<StartFigures> {
  await watcher.subscribe(statusTopic)
  const rss: number[] = []
  const times = await repeat(options.runs, options.warmup, async (k) => {
    await watcher.clearRetained(statusTopic)
    const online = watcher.next(statusTopic, (p) => p.toString() === 'online', options.onlineTimeoutMs ?? 60_000)
    const started = performance.now()
    const child = run(command, args, { timed: true, ...(options.cwd !== undefined && { cwd: options.cwd }) })
    let isOnline = false
    const early = child.exited.then((e) => {
      if (!isOnline) throw new Error(`${command} ${args.join(' ')} exited (${e.code}) before online: ${e.stderr.slice(-800)}`)
    })
    early.catch(() => {})
    await Promise.race([online, early])
    isOnline = true
    const ms = performance.now() - started
    await sleep(SETTLE_MS)
    const exit = await child.stop()
    if (k >= 0 && exit.peakRssKb !== undefined) rss.push(exit.peakRssKb)
    return ms
  })
  return { startMs: summarize(times), peakRssKb: summarize(rss) }
}
