/**
 * A `TreeStore` on a file that is never seen half-written: each save writes a temporary file in the same
 * directory, fsyncs it, renames it over the target and fsyncs the directory, so that after a crash or power
 * loss the target holds either the old bytes or the new ones, whole. Files are mode 0600: they hold secrets.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import type { TreeStore } from './types.ts'

const FILE_MODE = 0o600

export class AtomicFileStore implements TreeStore {
  readonly #tempPath: string
  /** Saves and loads run one at a time, so that a load never removes the temporary file of a running save. */
  #tail: Promise<unknown> = Promise.resolve()

  constructor(readonly path: string) {
    this.#tempPath = join(dirname(path), '.' + basename(path) + '.tmp')
  }

  load(): Promise<Uint8Array | undefined> {
    return this.#serialize(async () => {
      // A temporary file left by a crash mid-save is never loaded: the target is still the last whole save.
      await unlink(this.#tempPath).catch(ignoreMissing)
      return readFile(this.path).then((bytes) => new Uint8Array(bytes), ignoreMissing)
    })
  }

  save(bytes: Uint8Array): Promise<void> {
    return this.#serialize(async () => {
      const file = await open(this.#tempPath, 'w', FILE_MODE)
      try {
        await file.chmod(FILE_MODE) // the mode of open() only applies to a new file, and the umask may narrow it
        await file.writeFile(bytes) // all of it: writeFile repeats short writes
        await file.sync()
      } finally {
        await file.close()
      }
      await rename(this.#tempPath, this.path)
      await syncDirectory(dirname(this.path))
    })
  }

  #serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(task, task)
    this.#tail = run.catch(() => undefined)
    return run
  }
}

/** Makes the rename itself durable (POSIX: the directory entry lives in the directory). */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } catch (err) {
    // Some filesystems cannot fsync a directory; the rename is then as durable as they make it.
    const code = (err as NodeJS.ErrnoException).code
    if (!['EINVAL', 'ENOTSUP', 'EISDIR', 'EPERM'].includes(code ?? '')) throw err
  } finally {
    await handle.close()
  }
}

/** Nothing for a file that does not exist; any other error is passed on. */
function ignoreMissing(err: NodeJS.ErrnoException): undefined {
  if (err.code !== 'ENOENT') throw err
  return undefined
}
