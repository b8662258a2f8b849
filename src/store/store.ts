/**
 * The device's one store of durable state (STYLE.md "Durable state in one place"; SQLite's WAL and Anjay's
 * persistence are the models): a journal of commits and a checkpoint, behind the `StoreFiles` adapter.
 *
 * - Owners (the tree, the agent state, any later feature) each own a namespace. They tell the store of every
 *   change as they make it (`put`, `delete`, `clear`), and `commit` makes every change so far durable: one
 *   record appended to the journal and synced. A small change writes a small record, whatever the size of the
 *   tree or of the queues.
 * - Changes to one key between two commits are folded into one operation; a record is applied all or nothing.
 * - A checkpoint (the whole state, written atomically) replaces the journal when the journal has grown past
 *   `CHECKPOINT_POLICY`, at a clean stop (`checkpoint`), and after any failed write, since a failed write's
 *   changes are in the owners' state but no longer in any record. Owners give their entries for it through the
 *   `EntrySource` they attach; a namespace read from the files that no owner attached is kept as it was read.
 * - Restore reads the checkpoint, then replays the journal's whole records; a torn or corrupt tail is cut off
 *   (one line to `warn`) without any of it applied. A store this agent cannot read whole (a corrupt checkpoint,
 *   a newer format) is refused with a one-line reason and left as it is.
 */
import { encodeCheckpoint, encodeRecord, restore, type Namespaces, type Op } from './format.ts'
import { MemoryFiles, type StoreFiles } from './files.ts'

/**
 * When a commit writes a checkpoint instead of a record: once the journal holds `minJournalBytes`, or
 * `journalPerCheckpoint` times the last checkpoint's size, whichever is more. Scaling with the checkpoint keeps
 * the bytes a small change costs flat in the state's size: each byte of journal carries at most
 * 1/`journalPerCheckpoint` byte of checkpoint, and a restore replays at most that many checkpoints' worth.
 */
export const CHECKPOINT_POLICY = Object.freeze({
  minJournalBytes: 256 * 1024,
  journalPerCheckpoint: 2,
})

/** A namespace's entries in their order, made when a checkpoint is written. */
export type EntrySource = () => Iterable<[string, Uint8Array]>

export type LoadResult = { ok: true; entries: Map<string, Uint8Array> | undefined } | { ok: false; error: string }

/** What owners see of the store. */
export interface Store {
  /** True for a store that keeps nothing (an in-memory fleet): owners need not even make bytes for it. */
  readonly keepsNothing?: boolean
  /**
   * The durable entries of `namespace` (undefined when it holds none), or why the store cannot be read. A
   * namespace loaded again (a new owner, as after a restart in a test that keeps the store) is read afresh
   * from what is durable, and what its earlier owner left uncommitted is dropped.
   */
  load(namespace: string): Promise<LoadResult>
  /** Makes `source` the content of `namespace` for every checkpoint from now on. */
  attach(namespace: string, source: EntrySource): void
  put(namespace: string, key: string, value: Uint8Array): void
  delete(namespace: string, key: string): void
  /** Removes every entry of `namespace` (before an owner puts its whole content). */
  clear(namespace: string): void
  /**
   * Resolves once every change told so far is durable; rejects when the write fails. Calls made while a write
   * runs share it when it holds their changes, or else share one follow-up write.
   */
  commit(): Promise<void>
  /** Folds the journal into a new checkpoint (a clean stop), once the writes under way are done. */
  checkpoint(): Promise<void>
}

export interface JournalStoreOptions {
  /** One line about something the store repaired (a torn journal tail cut off). */
  warn?: (line: string) => void
  policy?: { minJournalBytes: number; journalPerCheckpoint: number }
}

type Opened = { ok: true } | { ok: false; error: string }

export class JournalStore implements Store {
  readonly files: StoreFiles
  readonly #warn: (line: string) => void
  readonly #policy: { minJournalBytes: number; journalPerCheckpoint: number }
  #opening: Promise<Opened> | undefined
  /** Namespaces read from the files that no owner has attached: kept in every checkpoint as they were read. */
  #unclaimed: Namespaces = new Map()
  readonly #loaded = new Set<string>()
  readonly #sources = new Map<string, EntrySource>()
  /** The changes not yet taken by a write, in order; undefined where a later change made one moot. */
  #ops: Array<Op | undefined> = []
  /** Namespace NUL key → the index in `#ops` of the key's last change. */
  #latest = new Map<string, number>()
  /** The last sequence number given to a record or a checkpoint. */
  #seq = 0
  /** Bytes of whole records in the journal. */
  #journalBytes = 0
  #checkpointBytes = 0
  /** Set by a failed write: what it held is only in the owners' state now, so the next write is a checkpoint. */
  #needsCheckpoint = false
  /** The files have been read (and repaired). */
  #ready = false
  #writing: Promise<void> | undefined
  #queued: Promise<void> | undefined

  constructor(files: StoreFiles, options: JournalStoreOptions = {}) {
    this.files = files
    this.#warn = options.warn ?? (() => undefined)
    this.#policy = options.policy ?? CHECKPOINT_POLICY
  }

  async load(namespace: string): Promise<LoadResult> {
    const opened = await this.#open()
    if (!opened.ok) return opened
    if (!this.#loaded.has(namespace)) {
      this.#loaded.add(namespace)
      return { ok: true, entries: this.#unclaimed.get(namespace) }
    }
    // A new owner of a namespace loaded before: what is durable, read again once the writes under way are done.
    await this.#settle()
    this.#dropPending(namespace)
    this.#sources.delete(namespace)
    let restored
    try {
      restored = restore(await this.files.readCheckpoint(), await this.files.readJournal())
    } catch (error) {
      return { ok: false, error: `cannot read the store: ${(error as Error).message}` }
    }
    if (!restored.ok) return restored
    const entries = restored.namespaces.get(namespace)
    if (entries === undefined) this.#unclaimed.delete(namespace)
    else this.#unclaimed.set(namespace, entries)
    return { ok: true, entries }
  }

  /** What `load` would give for a namespace not loaded yet, without taking it (a look before an upgrade). */
  async peek(namespace: string): Promise<LoadResult> {
    const opened = await this.#open()
    return opened.ok ? { ok: true, entries: this.#sources.has(namespace) ? undefined : this.#unclaimed.get(namespace) } : opened
  }

  attach(namespace: string, source: EntrySource): void {
    this.#loaded.add(namespace)
    this.#sources.set(namespace, source)
    this.#unclaimed.delete(namespace)
  }

  put(namespace: string, key: string, value: Uint8Array): void {
    const id = namespace + '\u0000' + key
    const last = this.#latest.get(id)
    const earlier = last === undefined ? undefined : this.#ops[last]
    // A key put again keeps its place in the map, so the earlier put can carry the new value where it stands.
    if (earlier?.kind === 'put') {
      this.#ops[last!] = { kind: 'put', ns: namespace, key, value }
      return
    }
    this.#latest.set(id, this.#ops.length)
    this.#ops.push({ kind: 'put', ns: namespace, key, value })
  }

  delete(namespace: string, key: string): void {
    const id = namespace + '\u0000' + key
    const last = this.#latest.get(id)
    if (last !== undefined && this.#ops[last]?.kind === 'put') this.#ops[last] = undefined
    this.#latest.set(id, this.#ops.length)
    this.#ops.push({ kind: 'delete', ns: namespace, key })
  }

  clear(namespace: string): void {
    this.#dropPending(namespace)
    this.#ops.push({ kind: 'clear', ns: namespace })
    this.#unclaimed.delete(namespace)
  }

  commit(): Promise<void> {
    const idle = this.#ops.length === 0 && !this.#needsCheckpoint
    if (this.#writing !== undefined) {
      if (idle) return this.#writing
      this.#queued ??= this.#writing.then(noop, noop).then(() => {
        this.#queued = undefined
        return this.commit()
      })
      return this.#queued
    }
    if (idle) return Promise.resolve()
    const writing = this.#write().finally(() => {
      if (this.#writing === writing) this.#writing = undefined
    })
    this.#writing = writing
    return writing
  }

  async checkpoint(): Promise<void> {
    await this.#settle()
    const opened = await this.#open()
    if (!opened.ok) throw new Error(opened.error)
    if (this.#journalBytes === 0 && this.#ops.length === 0 && !this.#needsCheckpoint) return
    this.#needsCheckpoint = true
    return this.commit()
  }

  /** Reads the files once, the first time anything needs them. */
  #open(): Promise<Opened> {
    return (this.#opening ??= this.#read())
  }

  async #read(): Promise<Opened> {
    let checkpoint: Uint8Array | undefined
    let journal: Uint8Array | undefined
    try {
      checkpoint = await this.files.readCheckpoint()
      journal = await this.files.readJournal()
    } catch (error) {
      return { ok: false, error: `cannot read the store: ${(error as Error).message}` }
    }
    const restored = restore(checkpoint, journal)
    if (!restored.ok) return restored
    // Owners may have attached and changed their namespaces meanwhile (a tree made in memory, then attached).
    for (const [namespace, entries] of restored.namespaces) if (!this.#sources.has(namespace)) this.#unclaimed.set(namespace, entries)
    const { seq, end, applied, dropped } = restored.journal
    this.#seq = seq
    this.#checkpointBytes = checkpoint?.length ?? 0
    if (dropped !== undefined) this.#warn(`store: the journal ends in ${dropped}; restored without it`)
    // Appends go only after whole records (one behind a torn tail would never be read back), and records the
    // checkpoint already holds are dropped (the process stopped before it emptied the journal).
    const keep = applied > 0 ? end : 0
    this.#journalBytes = journal?.length ?? 0
    if (this.#journalBytes > keep) {
      try {
        await this.files.truncateJournal(keep)
        this.#journalBytes = keep
      } catch {
        this.#needsCheckpoint = true // a checkpoint empties the journal
      }
    }
    this.#ready = true
    return { ok: true }
  }

  /** Takes the pending changes at once, so that a commit called later queues behind this write. */
  #write(): Promise<void> {
    const ops = this.#takePending()
    if (this.#ready) return this.#writeNow(ops)
    return this.#open().then((opened) => {
      if (!opened.ok) throw new Error(opened.error)
      return this.#writeNow(ops)
    })
  }

  #writeNow(ops: Op[]): Promise<void> {
    const bound = Math.max(this.#policy.minJournalBytes, this.#policy.journalPerCheckpoint * this.#checkpointBytes)
    if (this.#needsCheckpoint || this.#journalBytes >= bound) return this.#writeCheckpoint()
    if (ops.length === 0) return Promise.resolve()
    return this.#append(encodeRecord(++this.#seq, ops))
  }

  async #append(record: Uint8Array): Promise<void> {
    try {
      await this.files.append(record)
    } catch (error) {
      // Its changes are now only in the owners' state: the next write is a checkpoint of it.
      this.#needsCheckpoint = true
      // Part of the record may have reached the file: cut back to the last whole record if the disk lets us
      // (a restore would drop it as a torn tail anyway).
      await this.files.truncateJournal(this.#journalBytes).catch(noop)
      throw error
    }
    this.#journalBytes += record.length
  }

  async #writeCheckpoint(): Promise<void> {
    // The owners' entries as they are now hold every change told so far, so the pending ones go with them.
    this.#takePending()
    const bytes = encodeCheckpoint(++this.#seq, this.#entries())
    try {
      await this.files.writeCheckpoint(bytes)
    } catch (error) {
      this.#needsCheckpoint = true
      throw error
    }
    this.#checkpointBytes = bytes.length
    try {
      await this.files.truncateJournal(0)
      this.#journalBytes = 0
      this.#needsCheckpoint = false
    } catch (error) {
      // The checkpoint is durable; the journal's records are older than it and skipped on restore. Appending
      // waits until the journal could be emptied (it may end in a torn record): until then, checkpoints.
      this.#needsCheckpoint = true
      this.#warn(`store: the journal could not be emptied after a checkpoint (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
    }
  }

  *#entries(): Iterable<[string, string, Uint8Array]> {
    for (const [namespace, source] of this.#sources) for (const [key, value] of source()) yield [namespace, key, value]
    for (const [namespace, entries] of this.#unclaimed) {
      if (!this.#sources.has(namespace)) for (const [key, value] of entries) yield [namespace, key, value]
    }
  }

  #takePending(): Op[] {
    const ops = this.#ops.filter((op): op is Op => op !== undefined)
    this.#ops = []
    this.#latest = new Map()
    return ops
  }

  #dropPending(namespace: string): void {
    for (let i = 0; i < this.#ops.length; i++) if (this.#ops[i]?.ns === namespace) this.#ops[i] = undefined
    for (const id of this.#latest.keys()) if (id.startsWith(namespace + '\u0000')) this.#latest.delete(id)
  }

  /** Waits until no write runs or waits to run. */
  async #settle(): Promise<void> {
    while (this.#writing !== undefined || this.#queued !== undefined) await (this.#queued ?? this.#writing)?.catch(noop)
  }
}

/**
 * A store in memory (tests): the same journal and checkpoint, on `MemoryFiles`. `saves` counts the writes that
 * completed (records and checkpoints).
 */
export class MemoryStore extends JournalStore {
  declare readonly files: MemoryFiles

  constructor(files: MemoryFiles = new MemoryFiles(), options?: JournalStoreOptions) {
    super(files, options)
  }

  get saves(): number {
    return this.files.counts.writes
  }
}

/**
 * A store that keeps nothing, for state whose only copy is the one in memory (an in-memory fleet: a restart,
 * the only reader of a store, never comes). Owners writing to it do not even make the bytes.
 */
export class DiscardingStore implements Store {
  readonly keepsNothing = true

  load(_namespace?: string): Promise<LoadResult> {
    return Promise.resolve({ ok: true, entries: undefined })
  }

  attach(): void {}
  put(): void {}
  delete(): void {}
  clear(): void {}

  commit(): Promise<void> {
    return Promise.resolve()
  }

  checkpoint(): Promise<void> {
    return Promise.resolve()
  }
}

function noop(): void {}

/** The entries a restore of these files gives, namespace by namespace (what a restart would find). */
export async function readDurable(files: StoreFiles): Promise<{ ok: true; namespaces: Namespaces } | { ok: false; error: string }> {
  const restored = restore(await files.readCheckpoint(), await files.readJournal())
  return restored.ok ? { ok: true, namespaces: restored.namespaces } : restored
}
