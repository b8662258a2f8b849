/**
 * Where an object's value lives outside the tree (binding.md §8): a file read at each Get and written atomically,
 * or a program whose stdout is the value or whose stdin takes it. Each failure is a `SyncMLStatusError` with the
 * command's status (413 too large, 500 anything else) and a reason for the one line the caller logs.
 */
import { randomBytes } from 'node:crypto'
import { open, rename, stat, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { SyncMLStatusError } from '../errors.ts'
import type { ExternalCall, ExternalValue } from '../tree/external.ts'
import type { Backing, ObjectSpec } from './spec.ts'
import { checkProgramFile, runProgram, type RunResult } from './run.ts'

/** binding.md §8: the environment every program of an object gets, beside `PATH` and `LANG`. */
export function programEnv(call: ExternalCall): Record<string, string> {
  return { GWMO_NODE: call.uri, GWMO_SERVER_ID: call.serverId, GWMO_CORRELATOR: call.correlator ?? '' }
}

export const failed = (reason: string, status = 500) => new SyncMLStatusError(status, reason, 'GWMO_OBJECT')

/** Why a program's run is no success, or undefined when it exited 0. */
export function runFailure(r: RunResult): string | undefined {
  if (r.timedOut) return 'timed out'
  if (r.exitCode === 0) return undefined
  const err = Buffer.from(r.stderr).toString('utf8').trim().slice(0, 200)
  return `${r.exitCode === null ? `killed by ${r.signal}` : `exit ${r.exitCode}`}${err ? `: ${err}` : ''}`
}

export async function run(spec: ObjectSpec, argv: readonly string[], call: ExternalCall, stdin?: ExternalValue, maxBytes = spec.maxBytes): Promise<RunResult> {
  // Checked at start, and again at each run: a file someone else made changeable since is not run.
  const refused = checkProgramFile(argv[0]!)
  if (refused !== undefined) throw failed(`${argv[0]} ${refused}`)
  return runProgram([...argv], {
    env: programEnv(call),
    timeoutMs: spec.timeoutSeconds * 1000,
    maxBytes,
    signal: call.signal,
    ...(stdin !== undefined && { stdin }),
  }).catch((error: NodeJS.ErrnoException) => {
    throw failed(`cannot start ${argv[0]} (${error.code ?? error.message})`)
  })
}

/** Bytes as the leaf's value: one trailing newline trimmed; text for text formats, bytes for `bin`. */
function valueOf(spec: ObjectSpec, bytes: Uint8Array): ExternalValue {
  const bin = spec.format === 'bin'
  let end = bytes.length
  if (!bin && bytes[end - 1] === 10) end -= bytes[end - 2] === 13 ? 2 : 1
  if (end > spec.maxBytes) throw failed(`more than maxBytes (${spec.maxBytes})`, 413)
  return bin ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, end).toString('utf8')
}

/** At most `max` bytes of `file` (a /sys file says 4096 whatever it holds: read until the end, bounded). */
async function readBounded(file: string, max: number): Promise<Uint8Array> {
  const handle = await open(file, 'r').catch((error: NodeJS.ErrnoException) => {
    throw failed(`cannot read ${file} (${error.code ?? 'error'})`)
  })
  try {
    const buffer = Buffer.alloc(max)
    let size = 0
    while (size < max) {
      const { bytesRead } = await handle.read(buffer, size, max - size, null)
      if (bytesRead === 0) break
      size += bytesRead
    }
    return buffer.subarray(0, size)
  } catch (error) {
    throw failed(`cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  } finally {
    await handle.close()
  }
}

/** The value at a Get: the backing's bytes, `maxBytes` and its newline the only rule here. */
export async function readValue(spec: ObjectSpec, backing: Backing, call: ExternalCall): Promise<ExternalValue> {
  // Two more bytes than maxBytes: room for the newline that is trimmed, and one to tell "too long".
  const room = spec.maxBytes + 3
  if (backing.file !== undefined) {
    const bytes = await readBounded(backing.file, room)
    if (bytes.length === room) throw failed(`more than maxBytes (${spec.maxBytes})`, 413)
    return valueOf(spec, bytes)
  }
  const r = await run(spec, backing.command, call, undefined, room)
  const why = runFailure(r)
  if (why !== undefined) throw failed(`${backing.command[0]}: ${why}`)
  if (r.truncated) throw failed(`more than maxBytes (${spec.maxBytes})`, 413)
  return valueOf(spec, r.stdout)
}

/** Whether a file is written in place: the kernel's (/sys, /proc) and devices cannot be replaced by a rename. */
async function inPlace(file: string): Promise<boolean> {
  if (/^\/(sys|proc|dev)\//.test(file)) return true
  const st = await stat(file).catch(() => undefined)
  return st !== undefined && !st.isFile() && !st.isDirectory()
}

async function writeFileDurably(file: string, flags: string, value: ExternalValue, mode?: number): Promise<void> {
  const handle = await open(file, flags, mode)
  try {
    await handle.writeFile(value)
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * Writes a Replace's value. A file is replaced atomically (a temporary file beside it, fsync, rename), so a reader
 * sees the old value or the new one whole; it keeps the mode it had.
 */
export async function writeValue(spec: ObjectSpec, backing: Backing, value: ExternalValue, call: ExternalCall): Promise<void> {
  if (backing.file !== undefined) {
    const file = backing.file
    try {
      if (await inPlace(file)) return await writeFileDurably(file, 'w', value)
      const mode = (await stat(file).catch(() => undefined))?.mode ?? 0o644
      const temp = join(dirname(file), `.${basename(file)}.${randomBytes(4).toString('hex')}.tmp`)
      try {
        await writeFileDurably(temp, 'wx', value, mode & 0o7777)
        await rename(temp, file)
      } catch (error) {
        await unlink(temp).catch(() => {})
        throw error
      }
      return
    } catch (error) {
      throw failed(`cannot write ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
    }
  }
  const r = await run(spec, backing.command, call, value)
  const why = runFailure(r)
  if (why !== undefined) throw failed(`${backing.command[0]}: ${why}`)
}
