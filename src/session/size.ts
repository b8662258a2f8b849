import type { ReplyEntry } from './reply.ts'

/** 413 "Request entity too large" (SyncML RepPro 1.2, 10.3): a Get whose Results do not fit the party's MaxMsgSize. */
export const ENTITY_TOO_LARGE = 413

export interface Encoded {
  payload: Uint8Array
  refs: [string, string][]
}

/**
 * Fits a reply to the party's MaxMsgSize (OMA DM RepPro 1.2, MetInf MaxMsgSize). Rather than splitting a reply
 * over several messages (Large Object handling, which DM 1.2 leaves optional), the largest Results are
 * dropped one by one and their Gets answered 413, until the message fits; Statuses and our own commands are
 * always kept. When even that is too large the message goes as it is (`oversize`) and is logged.
 */
export function fitToSize(
  entries: ReplyEntry[],
  maxMsgSize: number | undefined,
  encode: (entries: ReplyEntry[]) => Encoded,
): Encoded & { oversize: boolean } {
  let current = entries
  for (;;) {
    const encoded = encode(current)
    if (maxMsgSize === undefined || maxMsgSize <= 0 || encoded.payload.length <= maxMsgSize) return { ...encoded, oversize: false }
    const largest = largestResults(current)
    if (largest === undefined) return { ...encoded, oversize: true }
    current = current
      .filter((e) => e !== largest)
      .map((e) =>
        e.kind === 'status' && e.status.cmd === 'Get' && e.status.cmdRef === largest.results.cmdRef && e.status.msgRef === largest.results.msgRef
          ? { ...e, status: { ...e.status, data: String(ENTITY_TOO_LARGE) } }
          : e,
      )
  }
}

function largestResults(entries: ReplyEntry[]): Extract<ReplyEntry, { kind: 'results' }> | undefined {
  let best: Extract<ReplyEntry, { kind: 'results' }> | undefined
  let bestSize = -1
  for (const entry of entries) {
    if (entry.kind !== 'results') continue
    const size = entry.results.items.reduce((n, item) => n + (item.data?.length ?? 0), 0)
    if (size > bestSize) {
      best = entry
      bestSize = size
    }
  }
  return best
}
