/**
 * The agent's side of the `spool` installer (binding.md §9): the agent, unprivileged, moves a downloaded and
 * verified package into its spool and writes a request naming it; a root-side installer (a systemd path unit and
 * its oneshot service, targets/systemd/gwmo-agent-installer) takes only a complete request whose package has the
 * SHA-256 it names, runs the module's `check` and `install`, and leaves its result where the agent reads it (a
 * root-owned file: root never writes into the agent's directory).
 *
 * request (written last, atomically):  `id=<operation id>` and `sha256=<hex>` lines
 * result:                               `id=`, then `rejected=<why>`, or `check=<exit>` and `install=<exit>`
 *                                       and `restart=0|1`
 */
import * as fs from 'node:fs/promises'
import { join } from 'node:path'

export const SPOOL_FILES = Object.freeze({ package: 'package', request: 'request' })

export type SpoolResult =
  | { rejected: string }
  | { check: number; install?: number; restart: boolean }

/** Moves `pkg` into the spool and hands it over with a request (the last write: the path unit fires on it). */
export async function submitToSpool(spoolDir: string, pkg: string, id: string, sha256: string): Promise<void> {
  await fs.mkdir(spoolDir, { recursive: true, mode: 0o755 })
  // The root-side service reads the spool; the agent's own UMask would hide it.
  await fs.chmod(spoolDir, 0o755)
  const target = join(spoolDir, SPOOL_FILES.package)
  await fs.rm(join(spoolDir, SPOOL_FILES.request), { force: true })
  if (pkg !== target) await fs.rename(pkg, target)
  await fs.chmod(target, 0o644)
  const temp = join(spoolDir, `.${SPOOL_FILES.request}.tmp`)
  await fs.writeFile(temp, `id=${id}\nsha256=${sha256}\n`, { mode: 0o644 })
  await fs.rename(temp, join(spoolDir, SPOOL_FILES.request))
}

/** The installer's result for operation `id`, or undefined while there is none (yet). */
export async function readSpoolResult(resultFile: string, id: string): Promise<SpoolResult | undefined> {
  let text: string
  try {
    text = await fs.readFile(resultFile, 'utf8')
  } catch {
    return undefined
  }
  const fields = new Map(text.split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]))
  if (fields.get('id') !== id) return undefined
  const rejected = fields.get('rejected')
  if (rejected !== undefined) return { rejected }
  const number = (key: string) => (/^\d+$/.test(fields.get(key) ?? '') ? Number(fields.get(key)) : undefined)
  const check = number('check')
  if (check === undefined) return { rejected: 'unreadable result' }
  const install = number('install')
  return { check, ...(install !== undefined && { install }), restart: fields.get('restart') === '1' }
}
