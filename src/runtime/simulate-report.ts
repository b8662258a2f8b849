/**
 * The fleet simulator's report: what its observer saw (`simulate-observe.ts`) as JSON for programs, Markdown for
 * people, and an SVG histogram of each timed exchange, written by hand (no dependency).
 *
 * Percentiles are nearest-rank (the smallest sample with at least p % of the samples at or below it), so each is
 * a latency that was actually measured. Histogram bins are spaced evenly on a log scale between the fastest and
 * the slowest sample: latencies spread over decades, and a linear scale would put all but the tail in one bar.
 */
import { EXCHANGES, type Counts, type ExchangeName, type FleetObserver } from './simulate-observe.ts'

export interface Bin {
  /** Lower edge (inclusive) and upper edge (exclusive, but the last bin's), ms. */
  from: number
  to: number
  count: number
}

export interface LatencySummary {
  count: number
  min: number
  p50: number
  p90: number
  p99: number
  max: number
  mean: number
  bins: Bin[]
}

export interface FleetReport {
  /** Seconds from the fleet's start to the report. */
  elapsedSeconds: number
  counts: Counts
  /** Milliseconds; an exchange nothing timed is absent. */
  latency: Partial<Record<ExchangeName, LatencySummary>>
}

const BINS = 24

/** Nearest rank: the sample at 1-based rank ⌈p/100 · n⌉ of the sorted samples. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!
}

function bins(sorted: readonly number[]): Bin[] {
  const min = sorted[0]!
  const max = sorted[sorted.length - 1]!
  // A log scale needs a positive start; sub-microsecond samples go in the first bin.
  const low = Math.max(min, 0.001)
  const ratio = max > low ? max / low : 1
  const edge = (i: number) => (i === 0 ? min : i === BINS ? max : low * ratio ** (i / BINS))
  const out: Bin[] = Array.from({ length: BINS }, (_, i) => ({ from: edge(i), to: edge(i + 1), count: 0 }))
  let bin = 0
  for (const sample of sorted) {
    while (bin < BINS - 1 && sample >= out[bin]!.to) bin++
    out[bin]!.count++
  }
  return out
}

export function summarize(samples: readonly number[]): LatencySummary | undefined {
  if (samples.length === 0) return undefined
  const sorted = Float64Array.from(samples).sort()
  const list = Array.from(sorted)
  let sum = 0
  for (const sample of list) sum += sample
  return {
    count: list.length,
    min: list[0]!,
    p50: percentile(list, 50),
    p90: percentile(list, 90),
    p99: percentile(list, 99),
    max: list[list.length - 1]!,
    mean: sum / list.length,
    bins: bins(list),
  }
}

export function fleetReport(observer: FleetObserver): FleetReport {
  const latency: FleetReport['latency'] = {}
  for (const name of EXCHANGES) {
    const summary = summarize(observer.samples[name])
    if (summary) latency[name] = summary
  }
  return {
    elapsedSeconds: Math.round((observer.now() - observer.startedAt) / 100) / 10,
    counts: structuredClone(observer.counts),
    latency,
  }
}

const EXCHANGE_TITLES: Record<ExchangeName, string> = {
  answer: 'a device\'s message to the party\'s answer',
  detection: 'Device Detection Alert to the Bootstrapped DMS List acknowledged',
  session: 'session, first message to its end',
}

/** Milliseconds, to three significant digits at most. */
export function ms(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)
}

export function reportMarkdown(report: FleetReport, svgName?: string): string {
  const { counts } = report
  const lines = [
    '# Fleet simulator report',
    '',
    `${counts.devices} devices, ${report.elapsedSeconds} s.`,
    '',
    '| outcome | count |',
    '| --- | --- |',
    `| devices online at the end | ${counts.online} |`,
    ...Object.entries(counts.sessions).sort().map(([outcome, n]) => `| sessions ${outcome} | ${n} |`),
    `| detections answered | ${counts.detectionsAnswered} |`,
    `| alerts delivered (in sessions that completed) | ${counts.alertsDelivered} |`,
    `| alerts not delivered (in sessions that did not) | ${counts.alertsUndelivered} |`,
    `| messages sent / sent again / received | ${counts.messagesSent} / ${counts.messagesResent} / ${counts.messagesReceived} |`,
    '',
    '| exchange (ms) | count | p50 | p90 | p99 | max |',
    '| --- | --- | --- | --- | --- | --- |',
  ]
  for (const name of EXCHANGES) {
    const s = report.latency[name]
    lines.push(s ? `| ${EXCHANGE_TITLES[name]} | ${s.count} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p99)} | ${ms(s.max)} |` : `| ${EXCHANGE_TITLES[name]} | 0 | | | | |`)
  }
  if (svgName !== undefined) lines.push('', `![latency histograms](${svgName})`)
  return lines.join('\n') + '\n'
}

const escapeXml = (text: string) => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`)

const WIDTH = 640
const PANEL = 180
const MARGIN = { left: 56, right: 16, top: 28, bottom: 36 }

/** One histogram per timed exchange, stacked; the p50, p90 and p99 marked on each. */
export function reportSvg(report: FleetReport): string {
  const panels = EXCHANGES.filter((name) => report.latency[name] !== undefined)
  const height = Math.max(1, panels.length) * PANEL
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right
  const plotHeight = PANEL - MARGIN.top - MARGIN.bottom
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
  ]
  if (panels.length === 0) out.push(`<text x="${WIDTH / 2}" y="${PANEL / 2}" text-anchor="middle">no exchange was timed</text>`)
  panels.forEach((name, k) => {
    const s = report.latency[name]!
    const top = k * PANEL + MARGIN.top
    const bottom = top + plotHeight
    const most = Math.max(...s.bins.map((b) => b.count))
    const barWidth = plotWidth / s.bins.length
    // x by bin index: the bins are log-spaced, so this is a log axis.
    const xOf = (value: number) => {
      const i = s.bins.findIndex((b) => value < b.to)
      const bin = s.bins[i === -1 ? s.bins.length - 1 : i]!
      const within = bin.to > bin.from ? Math.min(1, Math.max(0, (value - bin.from) / (bin.to - bin.from))) : 0
      return MARGIN.left + ((i === -1 ? s.bins.length - 1 : i) + within) * barWidth
    }
    out.push(`<g class="exchange" data-exchange="${name}">`)
    out.push(`<text x="${MARGIN.left}" y="${top - 10}" font-weight="bold">${escapeXml(`${EXCHANGE_TITLES[name]}: ${s.count} samples, ms`)}</text>`)
    s.bins.forEach((bin, i) => {
      const h = most > 0 ? (bin.count / most) * plotHeight : 0
      out.push(`<rect x="${(MARGIN.left + i * barWidth).toFixed(1)}" y="${(bottom - h).toFixed(1)}" width="${(barWidth - 1).toFixed(1)}" height="${h.toFixed(1)}" fill="#4a7bb7"><title>${ms(bin.from)}–${ms(bin.to)} ms: ${bin.count}</title></rect>`)
    })
    out.push(`<line x1="${MARGIN.left}" y1="${bottom}" x2="${WIDTH - MARGIN.right}" y2="${bottom}" stroke="black"/>`)
    out.push(`<line x1="${MARGIN.left}" y1="${top}" x2="${MARGIN.left}" y2="${bottom}" stroke="black"/>`)
    out.push(`<text x="${MARGIN.left - 4}" y="${top + 4}" text-anchor="end">${most}</text>`, `<text x="${MARGIN.left - 4}" y="${bottom}" text-anchor="end">0</text>`)
    for (const i of [0, BINS / 4, BINS / 2, (3 * BINS) / 4, BINS]) {
      const value = i === s.bins.length ? s.bins[i - 1]!.to : s.bins[i]!.from
      out.push(`<text x="${(MARGIN.left + i * barWidth).toFixed(1)}" y="${bottom + 14}" text-anchor="middle">${ms(value)}</text>`)
    }
    for (const [label, value, colour] of [['p50', s.p50, '#2a9d3a'], ['p90', s.p90, '#e08a00'], ['p99', s.p99, '#c0392b']] as const) {
      const x = xOf(value).toFixed(1)
      out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${bottom}" stroke="${colour}" stroke-dasharray="4 2"/>`)
      out.push(`<text x="${x}" y="${bottom + 28}" text-anchor="middle" fill="${colour}">${label} ${ms(value)}</text>`)
    }
    out.push('</g>')
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
