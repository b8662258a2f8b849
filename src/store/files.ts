/**
 * The thin adapter under the store (STYLE.md: the file I/O behind it, so that tests can use memory): the two
 * files the store keeps, and the few things it does with them. `DiskFiles` (disk.ts) is the device's;
 * `MemoryFiles` keeps the same two files in memory, counts what a disk would be asked to write and sync, and
 * lets a test hold or fail a write.
 */

export interface StoreFiles {
  /** The checkpoint's bytes, or undefined when there is none. */
  readCheckpoint(): Promise<Uint8Array | undefined>
  /** Replaces the checkpoint atomically: afterwards a read gives the old bytes or the new ones, whole. */
  writeCheckpoint(bytes: Uint8Array): Promise<void>
  /** The journal's bytes, or undefined when there is none. */
  readJournal(): Promise<Uint8Array | undefined>
  /** Appends to the journal (made if missing) and resolves once the bytes are durable. */
  append(bytes: Uint8Array): Promise<void>
  /** Cuts the journal to its first `length` bytes, durably. */
  truncateJournal(length: number): Promise<void>
}

/** What a store's files were asked to do: the figures of `npm run bench`. */
export interface WriteCounts {
  /** Bytes written (journal appends, checkpoints). */
  bytes: number
  /** fsync and fdatasync calls (a file's and a directory's). */
  syncs: number
  /** Writes that completed: appends and checkpoints. */
  writes: number
}

export type WriteKind = 'append' | 'checkpoint' | 'truncate'

export class MemoryFiles implements StoreFiles {
  checkpoint: Uint8Array | undefined
  journal: Uint8Array | undefined
  readonly counts: WriteCounts = { bytes: 0, syncs: 0, writes: 0 }
  /**
   * Runs before every write: a test holds a write by returning a promise it resolves later, or fails it by
   * throwing (nothing is written then).
   */
  beforeWrite: ((kind: WriteKind, bytes: Uint8Array) => Promise<void> | void) | undefined

  constructor(initial: { checkpoint?: Uint8Array; journal?: Uint8Array } = {}) {
    this.checkpoint = initial.checkpoint?.slice()
    this.journal = initial.journal?.slice()
  }

  readCheckpoint(): Promise<Uint8Array | undefined> {
    return Promise.resolve(this.checkpoint?.slice())
  }

  readJournal(): Promise<Uint8Array | undefined> {
    return Promise.resolve(this.journal?.slice())
  }

  async writeCheckpoint(bytes: Uint8Array): Promise<void> {
    await this.beforeWrite?.('checkpoint', bytes)
    this.checkpoint = bytes.slice()
    // As on a disk: the temporary file's fsync, then the directory's once it is renamed.
    this.#count(bytes.length, 2)
  }

  async append(bytes: Uint8Array): Promise<void> {
    await this.beforeWrite?.('append', bytes)
    const before = this.journal ?? new Uint8Array(0)
    const after = new Uint8Array(before.length + bytes.length)
    after.set(before)
    after.set(bytes, before.length)
    this.journal = after
    this.#count(bytes.length, 1)
  }

  async truncateJournal(length: number): Promise<void> {
    await this.beforeWrite?.('truncate', new Uint8Array(0))
    if (this.journal !== undefined && this.journal.length > length) this.journal = this.journal.slice(0, length)
    this.counts.syncs++
  }

  #count(bytes: number, syncs: number): void {
    this.counts.bytes += bytes
    this.counts.syncs += syncs
    this.counts.writes++
  }
}
