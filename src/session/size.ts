import type { ReplyEntry } from './reply.ts'

/** 413 "Request entity too large" (SyncML RepPro 1.2, 10.3): a Get whose Results do not fit the message. */
export const ENTITY_TOO_LARGE = 413

export interface Encoded {
  payload: Uint8Array
  refs: [string, string][]
}

export interface Fitted extends Encoded {
  /** Not even without every entry that may give way does the message fit. */
  oversize: boolean
}

/**
 * What an entry's share of a message may be smaller by than its size encoded alone: a WBXML code-page switch
 * (2 bytes) it may need there and not in its message, and one its neighbour may need once it is gone. In XML
 * an entry's share is never smaller (its CmdID there has at least the digits it had alone).
 */
const CONTEXT_BYTES = 4

/** Entries that may give way when a message is too large: Results, and Generic Alerts of the persisted queue. */
function mayGo(entry: ReplyEntry): boolean {
  return entry.kind === 'results' || (entry.kind === 'command' && entry.alertId !== undefined)
}

/**
 * Fits a message to `limit` bytes (binding.md §11: the smaller of the party's MaxMsgSize and the broker's packet
 * size, announced or not). Rather than splitting it over several messages (Large Object handling, which DM 1.2
 * leaves optional), entries give way, the largest first: Results, whose Gets are answered 413 instead, and
 * Generic Alerts of the persisted queue, which stay queued for a later message. Statuses and the other commands
 * always stay; when even they alone are too large, that is the message (`oversize`), and the caller decides.
 *
 * Time linear in the message: it is encoded whole once; only when too large is each entry that may give way
 * encoded once alone, to learn its size, and the message once more without the entries that give way.
 */
export function fitToSize(entries: ReplyEntry[], limit: number | undefined, encode: (entries: ReplyEntry[]) => Encoded): Fitted {
  const whole = encode(entries)
  if (limit === undefined || whole.payload.length <= limit) return { ...whole, oversize: false }
  const candidates = entries.filter(mayGo)
  if (candidates.length === 0) return { ...whole, oversize: true }
  const bare = encode([]).payload.length
  const sized = candidates.map((entry) => ({ entry, size: encode([entry]).payload.length - bare }))
  sized.sort((a, b) => b.size - a.size)
  // The whole less, for each entry that goes, at least its share: an upper bound of what is left.
  let estimate = whole.payload.length
  const going = new Set<ReplyEntry>()
  for (const { entry, size } of sized) {
    if (estimate <= limit) break
    going.add(entry)
    estimate -= Math.max(0, size - CONTEXT_BYTES)
  }
  const fitted = encode(without(entries, going))
  if (fitted.payload.length <= limit) return { ...fitted, oversize: false }
  // Only when the entries that stay are too large on their own (the estimate is an upper bound otherwise).
  const least = going.size === candidates.length ? fitted : encode(without(entries, new Set(candidates)))
  return { ...least, oversize: least.payload.length > limit }
}

/** The entries without those that go; the Gets whose Results go are answered 413. */
function without(entries: ReplyEntry[], going: Set<ReplyEntry>): ReplyEntry[] {
  const refused = new Set<string>()
  for (const entry of going) if (entry.kind === 'results') refused.add(`${entry.results.msgRef}:${entry.results.cmdRef}`)
  const kept: ReplyEntry[] = []
  for (const entry of entries) {
    if (going.has(entry)) continue
    const status = entry.kind === 'status' ? entry.status : undefined
    if (status !== undefined && status.cmd === 'Get' && refused.has(`${status.msgRef}:${status.cmdRef}`)) {
      kept.push({ ...entry, status: { ...status, data: String(ENTITY_TOO_LARGE) } } as ReplyEntry)
    } else kept.push(entry)
  }
  return kept
}

/** The entries that stay whatever the size (Statuses, our own commands but the queued alerts). */
export function mustStay(entries: readonly ReplyEntry[]): ReplyEntry[] {
  return entries.filter((entry) => !mayGo(entry))
}
