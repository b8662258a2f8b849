/**
 * The bytes of the store: journal records and the checkpoint. Pure: bytes in, entries out, and back.
 *
 * The record model: the store holds namespaces (`tree`, `state`…), each an ordered map of keys to byte values.
 * Order is a Map's: a new key goes last, a key put again keeps its place, a key deleted and put again goes
 * last; replaying the same operations in the same order gives the same map, order included (the tree needs
 * its parents first). Its owner decides what a key and a value are (a tree node by its path, a state entry by
 * its name); the store knows records and bytes only.
 *
 * An operation: u8 kind (1 put, 2 delete, 3 clear the namespace), the namespace, then the key (not for clear),
 * then the value (put only); each of these as a LEB128 length and its bytes (names and keys in UTF-8).
 *
 * A journal record, one per commit, appended:
 *   0  u32 BE  body length
 *   4  u32 BE  CRC-32 of the body
 *   8  body:   u8 format version (1), u64 BE sequence number, then the operations
 * Sequence numbers rise by one from record to record and go on across checkpoints: a record whose number is not
 * above the checkpoint's is already in it (the journal was not yet emptied when the process stopped).
 *
 * The checkpoint, written whole and atomically:
 *   0  8 bytes  magic "GWMOSTOR"
 *   8  u16 BE   format version (1)
 *  10  u64 BE   sequence number of the last change it holds
 *  18  u32 BE   body length
 *  22  32 bytes SHA-256 of the body
 *  54  body     one put per entry, namespace by namespace, each in its order
 */
import { createHash } from 'node:crypto'
import { crc32 } from './crc32.ts'

export const STORE_FORMAT_VERSION = 1
const MAGIC = 'GWMOSTOR'
const CHECKPOINT_HEADER = 54
const RECORD_HEADER = 8
/** Version byte and sequence number. */
const BODY_PREFIX = 9
/** A record claiming more than this is a torn length field, not a record: no commit is this large. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024

const PUT = 1
const DELETE = 2
const CLEAR = 3

export type Op =
  | { kind: 'put'; ns: string; key: string; value: Uint8Array }
  | { kind: 'delete'; ns: string; key: string }
  | { kind: 'clear'; ns: string }

/** Namespace → key → value, each map in its order. */
export type Namespaces = Map<string, Map<string, Uint8Array>>

export function applyOp(namespaces: Namespaces, op: Op): void {
  if (op.kind === 'clear') {
    namespaces.delete(op.ns)
    return
  }
  let entries = namespaces.get(op.ns)
  if (op.kind === 'put') {
    if (entries === undefined) namespaces.set(op.ns, (entries = new Map()))
    entries.set(op.key, op.value)
  } else if (entries !== undefined) {
    entries.delete(op.key)
    if (entries.size === 0) namespaces.delete(op.ns)
  }
}

// ---- writing ----

class Writer {
  readonly #parts: Uint8Array[] = []
  length = 0
  readonly #encoder = new TextEncoder()

  raw(bytes: Uint8Array): void {
    this.#parts.push(bytes)
    this.length += bytes.length
  }

  /** A field: its length as LEB128, then its bytes (text as UTF-8). */
  field(value: string | Uint8Array): void {
    const bytes = typeof value === 'string' ? this.#encoder.encode(value) : value
    const length: number[] = []
    let n = bytes.length
    for (; n >= 0x80; n = Math.floor(n / 128)) length.push((n & 0x7f) | 0x80)
    length.push(n)
    this.raw(Uint8Array.from(length))
    this.raw(bytes)
  }

  op(op: Op): void {
    this.raw(Uint8Array.of(op.kind === 'put' ? PUT : op.kind === 'delete' ? DELETE : CLEAR))
    this.field(op.ns)
    if (op.kind === 'clear') return
    this.field(op.key)
    if (op.kind === 'put') this.field(op.value)
  }

  /** Everything written, after `header` zero bytes the caller fills in. */
  finish(header: number): Uint8Array {
    const out = new Uint8Array(header + this.length)
    let at = header
    for (const part of this.#parts) {
      out.set(part, at)
      at += part.length
    }
    return out
  }
}

function setSeq(view: DataView, at: number, seq: number): void {
  view.setUint32(at, Math.floor(seq / 2 ** 32))
  view.setUint32(at + 4, seq >>> 0)
}

function getSeq(view: DataView, at: number): number {
  return view.getUint32(at) * 2 ** 32 + view.getUint32(at + 4)
}

/** One journal record: the operations of one commit, all or nothing. */
export function encodeRecord(seq: number, ops: Iterable<Op>): Uint8Array {
  const writer = new Writer()
  for (const op of ops) writer.op(op)
  const out = writer.finish(RECORD_HEADER + BODY_PREFIX)
  const view = new DataView(out.buffer)
  view.setUint32(0, out.length - RECORD_HEADER)
  out[RECORD_HEADER] = STORE_FORMAT_VERSION
  setSeq(view, RECORD_HEADER + 1, seq)
  view.setUint32(4, crc32(out.subarray(RECORD_HEADER)))
  return out
}

/** The checkpoint of `entries` (namespace, key, value), every change up to `seq` included. */
export function encodeCheckpoint(seq: number, entries: Iterable<[string, string, Uint8Array]>): Uint8Array {
  const writer = new Writer()
  for (const [ns, key, value] of entries) writer.op({ kind: 'put', ns, key, value })
  const out = writer.finish(CHECKPOINT_HEADER)
  const view = new DataView(out.buffer)
  out.set(new TextEncoder().encode(MAGIC))
  view.setUint16(8, STORE_FORMAT_VERSION)
  setSeq(view, 10, seq)
  view.setUint32(18, out.length - CHECKPOINT_HEADER)
  out.set(sha256(out.subarray(CHECKPOINT_HEADER)), 22)
  return out
}

// ---- reading ----

/** The operations in `body`, or undefined when it is not a whole, well-formed list of them. */
function decodeOps(body: Uint8Array): Op[] | undefined {
  const decoder = new TextDecoder('utf-8', { fatal: true })
  let at = 0
  let failed = false
  /** A field: a LEB128 length of at most 5 bytes, then that many bytes. */
  const bytes = (): Uint8Array => {
    let length = 0
    for (let i = 0; ; i++) {
      if (at >= body.length || i === 5) {
        failed = true
        return new Uint8Array(0)
      }
      const b = body[at++]!
      length += (b & 0x7f) * 128 ** i
      if (b < 0x80) break
    }
    if (at + length > body.length) {
      failed = true
      return new Uint8Array(0)
    }
    at += length
    return body.slice(at - length, at)
  }
  const text = (): string => {
    try {
      return decoder.decode(bytes())
    } catch {
      failed = true
      return ''
    }
  }
  const ops: Op[] = []
  while (at < body.length) {
    const kind = body[at++]
    const ns = text()
    if (kind === CLEAR) ops.push({ kind: 'clear', ns })
    else if (kind === DELETE) ops.push({ kind: 'delete', ns, key: text() })
    else if (kind === PUT) ops.push({ kind: 'put', ns, key: text(), value: bytes() })
    else return undefined
    if (failed) return undefined
  }
  return ops
}

export type CheckpointResult = { ok: true; seq: number; namespaces: Namespaces } | { ok: false; error: string }

/** A checkpoint read back, refused whole (with a one-line reason) unless it is whole and well-formed. */
export function decodeCheckpoint(file: Uint8Array): CheckpointResult {
  const fail = (error: string): CheckpointResult => ({ ok: false, error: `checkpoint: ${error}` })
  if (file.length < CHECKPOINT_HEADER) return fail(`truncated: ${file.length} bytes, shorter than the ${CHECKPOINT_HEADER}-byte header`)
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength)
  if (Buffer.from(file.buffer, file.byteOffset, 8).toString('latin1') !== MAGIC) return fail('not a store checkpoint (bad magic)')
  const version = view.getUint16(8)
  if (version > STORE_FORMAT_VERSION) return fail(`version ${version} is newer than this agent reads (${STORE_FORMAT_VERSION})`)
  if (version !== STORE_FORMAT_VERSION) return fail(`unknown version ${version}`)
  const length = view.getUint32(18)
  if (file.length - CHECKPOINT_HEADER !== length) {
    return fail(`truncated or padded: body is ${file.length - CHECKPOINT_HEADER} bytes, header says ${length}`)
  }
  const body = file.subarray(CHECKPOINT_HEADER)
  if (!sha256(body).equals(file.subarray(22, CHECKPOINT_HEADER))) return fail('checksum mismatch: the file is corrupt')
  const ops = decodeOps(body)
  if (ops === undefined || ops.some((op) => op.kind !== 'put')) return fail('malformed body')
  const namespaces: Namespaces = new Map()
  for (const op of ops) applyOp(namespaces, op)
  return { ok: true, seq: getSeq(view, 10), namespaces }
}

export interface Replayed {
  /** The last sequence number applied (or the checkpoint's, when the journal adds nothing). */
  seq: number
  /** Where the last whole record ends: what follows is dropped. */
  end: number
  /** Whole records already in the checkpoint (skipped). */
  stale: number
  /** Whole records applied. */
  applied: number
  /** Why the bytes after `end` were dropped, when some were. */
  dropped?: string
}

/**
 * Applies the journal's whole records after `afterSeq` to `namespaces`, each all or nothing. Reading stops at
 * the first record that is not whole (cut short, its checksum wrong, out of sequence): that record and all
 * after it are the torn tail, and none of it is applied. A whole record of a newer format is an error: the
 * store was written by a newer agent, and nothing here may guess at it.
 */
export function replayJournal(namespaces: Namespaces, afterSeq: number, journal: Uint8Array): Replayed | { error: string } {
  const view = new DataView(journal.buffer, journal.byteOffset, journal.byteLength)
  const result: Replayed = { seq: afterSeq, end: 0, stale: 0, applied: 0 }
  let at = 0
  const drop = (why: string): Replayed => ({ ...result, dropped: `${why} at byte ${at} (${journal.length - at} bytes dropped)` })
  while (at < journal.length) {
    if (journal.length - at < RECORD_HEADER) return drop('a record header cut short')
    const length = view.getUint32(at)
    if (length < BODY_PREFIX || length > MAX_RECORD_BYTES) return drop(`a record of impossible length ${length}`)
    if (journal.length - at - RECORD_HEADER < length) return drop('a record cut short')
    const body = journal.subarray(at + RECORD_HEADER, at + RECORD_HEADER + length)
    if (crc32(body) !== view.getUint32(at + 4)) return drop('a record with a wrong checksum')
    const version = body[0]!
    if (version > STORE_FORMAT_VERSION) return { error: `journal: a record of version ${version}, newer than this agent reads (${STORE_FORMAT_VERSION})` }
    if (version !== STORE_FORMAT_VERSION) return drop(`a record of unknown version ${version}`)
    const seq = getSeq(view, at + RECORD_HEADER + 1)
    if (seq <= afterSeq) {
      result.stale++
    } else {
      if (seq !== result.seq + 1) return drop(`record ${seq} out of sequence after ${result.seq}`)
      const ops = decodeOps(body.subarray(BODY_PREFIX))
      if (ops === undefined) return drop(`record ${seq} malformed`)
      for (const op of ops) applyOp(namespaces, op)
      result.seq = seq
      result.applied++
    }
    at += RECORD_HEADER + length
    result.end = at
  }
  return result
}

export type Restored = { ok: true; namespaces: Namespaces; checkpointSeq: number; journal: Replayed } | { ok: false; error: string }

/** What a checkpoint and the journal after it hold together (either may be absent). */
export function restore(checkpoint: Uint8Array | undefined, journal: Uint8Array | undefined): Restored {
  let namespaces: Namespaces = new Map()
  let checkpointSeq = 0
  if (checkpoint !== undefined) {
    const decoded = decodeCheckpoint(checkpoint)
    if (!decoded.ok) return decoded
    namespaces = decoded.namespaces
    checkpointSeq = decoded.seq
  }
  const replayed = replayJournal(namespaces, checkpointSeq, journal ?? new Uint8Array(0))
  if ('error' in replayed) return { ok: false, error: replayed.error }
  return { ok: true, namespaces, checkpointSeq, journal: replayed }
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest()
}
