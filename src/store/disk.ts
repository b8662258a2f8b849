/**
 * The store's files on disk, in one directory (the agent's `stateDir`). Files are mode 0600: they hold secrets.
 * - The checkpoint is never seen half-written: a new one is written to a temporary file in the same directory,
 *   fsynced, renamed over the old one, and the directory fsynced, so that after a crash or a power cut the
 *   checkpoint is the old one or the new one, whole. A temporary file left by a crash is removed, never read.
 * - The journal is appended to and fdatasynced (the data and the file's length, not its times): one sync per
 *   commit. It is opened for each append, so that a file the agent may no longer write (a disk gone read-only)
 *   fails the append instead of an earlier open quietly working on.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { StoreFiles, WriteCounts } from './files.ts'

const FILE_MODE = 0o600

export interface DiskFileNames {
  checkpoint: string
  journal: string
}

export class DiskFiles implements StoreFiles {
  readonly checkpointPath: string
  readonly journalPath: string
  readonly #tempPath: string
  /** Whether the journal's directory entry is known to be durable (it existed, or was made and synced). */
  #journalListed = false
  readonly counts: WriteCounts = { bytes: 0, syncs: 0, writes: 0 }

  constructor(readonly dir: string, names: DiskFileNames) {
    this.checkpointPath = join(dir, names.checkpoint)
    this.journalPath = join(dir, names.journal)
    this.#tempPath = join(dir, `.${names.checkpoint}.tmp`)
  }

  async readCheckpoint(): Promise<Uint8Array | undefined> {
    // A checkpoint torn by a crash lives only in the temporary file: the checkpoint itself is the last whole one.
    await unlink(this.#tempPath).catch(ignoreMissing)
    return readFile(this.checkpointPath).then((bytes) => new Uint8Array(bytes), ignoreMissing)
  }

  async readJournal(): Promise<Uint8Array | undefined> {
    const bytes = await readFile(this.journalPath).then((b) => new Uint8Array(b), ignoreMissing)
    this.#journalListed = bytes !== undefined
    return bytes
  }

  async writeCheckpoint(bytes: Uint8Array): Promise<void> {
    const file = await open(this.#tempPath, 'w', FILE_MODE)
    try {
      await file.chmod(FILE_MODE) // the mode of open() only applies to a new file, and the umask may narrow it
      await file.writeFile(bytes) // all of it: writeFile repeats short writes
      await file.sync()
    } finally {
      await file.close()
    }
    await rename(this.#tempPath, this.checkpointPath)
    await this.#syncDirectory()
    this.counts.bytes += bytes.length
    this.counts.syncs += 1
    this.counts.writes++
  }

  async append(bytes: Uint8Array): Promise<void> {
    const file = await open(this.journalPath, 'a', FILE_MODE)
    try {
      if (!this.#journalListed) await file.chmod(FILE_MODE)
      await file.writeFile(bytes)
      await file.datasync()
    } finally {
      await file.close()
    }
    this.counts.bytes += bytes.length
    this.counts.syncs++
    this.counts.writes++
    if (!this.#journalListed) {
      // A new file's name lives in the directory: synced once, so that a power cut cannot lose the whole file.
      await this.#syncDirectory()
      this.#journalListed = true
    }
  }

  async truncateJournal(length: number): Promise<void> {
    const file = await open(this.journalPath, 'r+').catch(ignoreMissing)
    if (file === undefined) return
    try {
      await file.truncate(length)
      await file.datasync()
    } finally {
      await file.close()
    }
    this.counts.syncs++
  }

  /** Makes a rename or a new name durable (POSIX: the directory entry lives in the directory). */
  async #syncDirectory(): Promise<void> {
    const handle = await open(this.dir, 'r')
    try {
      await handle.sync()
      this.counts.syncs++
    } catch (err) {
      // Some filesystems cannot fsync a directory; the rename is then as durable as they make it.
      const code = (err as NodeJS.ErrnoException).code
      if (!['EINVAL', 'ENOTSUP', 'EISDIR', 'EPERM'].includes(code ?? '')) throw err
    } finally {
      await handle.close()
    }
  }
}

/** Nothing for a file that does not exist; any other error is passed on. */
export function ignoreMissing(err: NodeJS.ErrnoException): undefined {
  if (err.code !== 'ENOENT') throw err
  return undefined
}
