/**
 * The integrator's object definitions (binding.md §8): `objects` in the configuration and every `*.json` file in
 * `objectsDir` (one object or a list), each checked whole before anything starts. A bad one refuses the
 * configuration with one line naming the object's path and the key, never its value (a value may be a secret).
 */
import { readdir, readFile } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import { isValidAcl } from '../tree/acl.ts'
import { checkLeafData } from '../tree/formats.ts'
import type { NodeFormat } from '../tree/types.ts'
import { parseUri } from '../tree/uri.ts'
import { checkProgramFile } from './run.ts'

/** Where a value comes from or goes to: a file, or a program (argv, no shell). */
export type Backing = { file: string; command?: undefined } | { command: readonly string[]; file?: undefined }

/** One object, one node, every default filled in. */
export interface ObjectSpec {
  /** As written (`./Vendor/Sensors/CpuTemp`). */
  readonly path: string
  readonly format: NodeFormat
  readonly type?: string
  /** Absent: the tree's default for an external leaf (`Get=*` and nothing more). */
  readonly acl?: string
  /** The initial value of a leaf the tree keeps (stored and persisted; a Replace is stored). */
  readonly value?: string
  readonly read?: Backing
  readonly write?: Backing
  readonly exec?: { readonly command: readonly string[] }
  /** An Exec is answered 202 and its end reported in a Generic Alert (only with `exec`). */
  readonly async: boolean
  /** That alert's Meta/Type. */
  readonly alertType: string
  /** The exec restarts the device: its result is reported after the restart, from the boot id. */
  readonly rebootsDevice: boolean
  readonly timeoutSeconds: number
  readonly maxBytes: number
}

export const OBJECT_DEFAULTS = Object.freeze({
  format: 'chr' as NodeFormat,
  async: true,
  alertType: 'urn:x-gwmo-agent:exec:1.0:result',
  timeoutSeconds: 10,
  maxBytes: 4096,
})

/** binding.md §8: the standard objects' subtrees are the agent's own. */
const RESERVED = ['DMAcc', 'DevInfo', 'Inbox', 'FUMO']
const FORMATS: readonly NodeFormat[] = ['chr', 'int', 'bool', 'float', 'bin', 'b64', 'node']
const KEYS = 'path format type acl value read write exec async alertType rebootsDevice timeoutSeconds maxBytes'.split(' ')

/** Thrown inside this module only; its message is the one line the configuration is refused with. */
class ObjectError extends Error {}

type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/

function checkPath(value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('./')) throw new ObjectError('path: must be a URI starting with "./"')
  const parsed = parseUri(value)
  if (typeof parsed === 'number' || parsed.prop !== undefined || CONTROL.test(value)) throw new ObjectError(`path: ${JSON.stringify(value)} is not a valid node URI`)
  if (RESERVED.includes(parsed.path.split('/')[0]!)) throw new ObjectError(`path: ${value} is under ./${parsed.path.split('/')[0]}, which the agent keeps to itself`)
  return value
}

/** One object at `path`; `where` names it in messages (`objects[2] ./Vendor/X`). */
function parseOne(raw: unknown, path: string, where: string): ObjectSpec {
  const at = (key: string, problem: string): never => {
    throw new ObjectError(`${where}: ${key}: ${problem}`)
  }
  if (!isObject(raw)) return at('', 'must be an object')
  for (const key of Object.keys(raw)) if (!KEYS.includes(key)) at(key, 'unknown key')

  const text = (key: string): string | undefined => {
    const v = raw[key]
    if (v === undefined) return undefined
    return typeof v === 'string' && v !== '' && !CONTROL.test(v) ? v : at(key, 'must be a non-empty string without control characters')
  }
  const bool = (key: string, fallback: boolean): boolean => {
    const v = raw[key] ?? fallback
    return typeof v === 'boolean' ? v : at(key, 'must be true or false')
  }
  const integer = (key: string, fallback: number, max: number): number => {
    const v = raw[key] ?? fallback
    return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= max ? v : at(key, `must be an integer from 1 to ${max}`)
  }
  const command = (key: string, v: unknown): string[] => {
    if (!Array.isArray(v) || v.length === 0 || !v.every((a) => typeof a === 'string' && !a.includes('\0'))) {
      return at(key, 'must be a non-empty list of strings (argv, no shell)')
    }
    const refused = checkProgramFile(v[0] as string)
    return refused === undefined ? (v as string[]) : at(`${key}[0]`, `${v[0]} ${refused}`)
  }
  const backing = (key: 'read' | 'write'): Backing | undefined => {
    const v = raw[key]
    if (v === undefined) return undefined
    if (!isObject(v) || Object.keys(v).length !== 1 || (v.file === undefined && v.command === undefined)) {
      return at(key, 'must be { "file": PATH } or { "command": [ARGV] }')
    }
    if (v.command !== undefined) return { command: command(`${key}.command`, v.command) }
    return typeof v.file === 'string' && isAbsolute(v.file) && !CONTROL.test(v.file) ? { file: v.file } : at(`${key}.file`, 'must be an absolute path')
  }

  const format = (raw.format ?? OBJECT_DEFAULTS.format) as NodeFormat
  if (!FORMATS.includes(format)) at('format', `must be one of ${FORMATS.join(', ')}`)
  const type = text('type')
  const acl = text('acl')
  if (acl !== undefined && !isValidAcl(acl)) at('acl', 'is not a DM ACL (Get=*&Replace=<ServerID>+<ServerID>)')
  if (raw.value !== undefined && typeof raw.value !== 'string') at('value', 'must be a string')
  const value = raw.value as string | undefined
  const read = backing('read')
  const write = backing('write')
  let exec: ObjectSpec['exec']
  if (raw.exec !== undefined) {
    if (!isObject(raw.exec) || Object.keys(raw.exec).join() !== 'command') at('exec', 'must be { "command": [ARGV] }')
    exec = { command: command('exec.command', (raw.exec as Json).command) }
  }
  const maxBytes = integer('maxBytes', OBJECT_DEFAULTS.maxBytes, 1024 * 1024)
  const spec: ObjectSpec = {
    path,
    format,
    ...(type !== undefined && { type }),
    ...(acl !== undefined && { acl }),
    ...(value !== undefined && { value }),
    ...(read && { read }),
    ...(write && { write }),
    ...(exec && { exec }),
    async: bool('async', OBJECT_DEFAULTS.async),
    alertType: text('alertType') ?? OBJECT_DEFAULTS.alertType,
    rebootsDevice: bool('rebootsDevice', false),
    timeoutSeconds: integer('timeoutSeconds', OBJECT_DEFAULTS.timeoutSeconds, 86400),
    maxBytes,
  }

  if (format === 'node') {
    for (const key of ['value', 'read', 'write', 'exec']) if (raw[key] !== undefined) at(key, 'an interior node (format node) has no value and runs nothing')
  } else {
    // One source for the value: stored (`value`, or a write.command's last value), read, or a written file.
    if (value !== undefined && read) at('value', 'only one of value and read')
    if (value !== undefined && write?.file !== undefined) at('value', 'not with write.file, whose file holds the value')
    if (value === undefined && !read && !write && !exec) at('value', 'a leaf needs value, read, write or exec')
    if (value !== undefined && (Buffer.byteLength(value) > maxBytes || !checkLeafData(format, value))) at('value', `does not fit format ${format} within maxBytes`)
  }
  if (!exec) {
    for (const key of ['async', 'alertType', 'rebootsDevice']) if (raw[key] !== undefined) at(key, 'only with exec')
  } else if (spec.rebootsDevice && !spec.async) {
    at('rebootsDevice', 'only with an asynchronous exec (its result is known after the restart)')
  } else if (!spec.async && raw.alertType !== undefined) {
    at('alertType', 'only with an asynchronous exec')
  }
  return spec
}

/** An object's path, checked; `at` says where it was defined. */
function pathOf(raw: unknown, at: string): string {
  try {
    return checkPath(isObject(raw) ? raw.path : undefined)
  } catch (error) {
    throw new ObjectError(`${at}: ${(error as Error).message}`)
  }
}

export type ObjectsResult = { ok: true; objects: ObjectSpec[] } | { ok: false; error: string }

/**
 * Checks a list of definitions; `source` names where it came from (`objects`, or a drop-in file's path), and
 * `taken` the paths already defined elsewhere, which no second object may define again.
 */
export function parseObjects(raw: unknown, source: string, taken: Set<string> = new Set()): ObjectsResult {
  try {
    const list = Array.isArray(raw) ? raw : [raw]
    const objects = list.map((one, i) => {
      const at = Array.isArray(raw) ? `${source}[${i}]` : source
      const path = pathOf(one, at)
      const where = `${at} ${path}`
      const spec = parseOne(one, path, where)
      const key = (parseUri(path) as { path: string }).path
      if (taken.has(key)) throw new ObjectError(`${where}: path: defined twice`)
      taken.add(key)
      return spec
    })
    return { ok: true, objects }
  } catch (error) {
    if (error instanceof ObjectError) return { ok: false, error: error.message }
    throw error
  }
}

/** The objects of every `*.json` file of `dir`, in name order; none may define a path `before` defines. */
export async function readObjectsDir(dir: string, before: readonly ObjectSpec[]): Promise<ObjectsResult> {
  const taken = new Set(before.map((o) => (parseUri(o.path) as { path: string }).path))
  const objects: ObjectSpec[] = []
  let names: string[]
  try {
    names = (await readdir(dir)).filter((name) => name.endsWith('.json')).sort()
  } catch (error) {
    return { ok: false, error: `objectsDir: cannot read ${dir} (${(error as NodeJS.ErrnoException).code ?? 'error'})` }
  }
  for (const name of names) {
    const file = join(dir, name)
    let raw: unknown
    try {
      raw = JSON.parse(await readFile(file, 'utf8'))
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      return { ok: false, error: `${file}: ${code ? `cannot read (${code})` : 'invalid JSON'}` }
    }
    const parsed = parseObjects(raw, file, taken)
    if (!parsed.ok) return parsed
    objects.push(...parsed.objects)
  }
  return { ok: true, objects }
}
