/**
 * Mounting a node whose value or action lives outside the tree (external.ts, binding.md §8): the tree keeps the
 * node itself, made as its shape says at every start (the configuration wins over what the tree held), so that
 * every ACL, format and size rule of the tree applies to it. Only a stored leaf's value (a leaf without `get`)
 * survives from one start to the next; its shape's `value` is the first one.
 */
import { isValidAcl } from './acl.ts'
import type { ExternalNode, ExternalNodeShape } from './external.ts'
import { canonicalFormat, checkLeafData, DEFAULT_LEAF_TYPE } from './formats.ts'
import { byteLength, childPath, pathToUri, TreeNode, type NodeView } from './node.ts'
import { sameNode } from './node-map.ts'
import { Overlay } from './overlay.ts'
import type { CommitResult } from './transaction.ts'
import { parseUri } from './uri.ts'

/** The largest value read or written of an external node when its shape names none (binding.md §8). */
export const DEFAULT_EXTERNAL_MAX_BYTES = 4096

/** What the agent keeps of its own: no mount below these unless `internal` (binding.md §8). */
const RESERVED = new Set(['DMAcc', 'DevInfo', 'Inbox', 'FUMO'])

/** A leaf without an ACL: any server reads it, none changes or runs it (binding.md §8, fail-safe). */
const DEFAULT_ACL = 'Get=*'

export interface MountOptions {
  /** The agent's own nodes (FUMO's): allowed under the reserved top-level nodes. */
  internal?: boolean
}

export type MountResult = { ok: true } | { ok: false; error: string }

/** A mounted node as the session sees it. */
export interface MountedNode {
  readonly path: string
  readonly uri: string
  readonly node: ExternalNode
  readonly format: ExternalNodeShape['format']
  /** A leaf's MIME type (undefined: `text/plain`). */
  readonly type: string | undefined
  readonly maxBytes: number
}

/** What mounting needs of the tree. */
export interface MountTarget {
  readonly committed: NodeView
  applyCommit(work: Overlay): CommitResult
}

/**
 * Checks `shape` at `uri` against the tree's mounts and writes the node (and the interior nodes on its way) as
 * the device, in one commit. Each error names the URI and what is wrong with it.
 */
export function mountNode(
  tree: MountTarget, mounts: ReadonlyMap<string, MountedNode>, uri: string, shape: ExternalNodeShape, node: ExternalNode,
  options: MountOptions = {},
): { ok: true; mounted: MountedNode } | { ok: false; error: string } {
  const fail = (why: string) => ({ ok: false as const, error: `${uri}: ${why}` })
  const parsed = parseUri(uri)
  if (typeof parsed === 'number' || parsed.prop !== undefined || parsed.path === '') return fail('not the URI of a node below the root')
  const path = parsed.path
  const top = path.split('/')[0]!
  if (RESERVED.has(top) && options.internal !== true) return fail(`./${top} is the agent's own`)
  const format = canonicalFormat(shape.format)
  if (format === undefined) return fail(`unknown format ${String(shape.format)}`)
  const acl = shape.acl ?? DEFAULT_ACL
  if (!isValidAcl(acl) || acl === '') return fail(`not a DM ACL: ${acl}`)
  const maxBytes = shape.maxBytes ?? DEFAULT_EXTERNAL_MAX_BYTES
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) return fail('maxBytes must be a whole number ≥ 1')
  if (mounts.has(path)) return fail('mounted twice')
  for (const other of mounts.values()) {
    if (path.startsWith(other.path + '/') && other.format !== 'node') return fail(`below the leaf ${other.uri}`)
    if (other.path.startsWith(path + '/') && format !== 'node') return fail(`a leaf above ${other.uri}`)
  }
  let initial: string | Uint8Array | undefined
  if (shape.value !== undefined) {
    if (format === 'node' || node.get !== undefined) return fail('a value for a node that keeps none')
    const checked = checkLeafData(format, shape.value)
    if (checked === undefined) return fail(`value does not fit the format ${format}`)
    if (byteLength(checked.data) > maxBytes) return fail(`value longer than maxBytes (${maxBytes})`)
    initial = checked.data
  }

  const work = new Overlay(tree.committed)
  const segments = path.split('/')
  for (let i = 1; i < segments.length; i++) {
    const p = segments.slice(0, i).join('/')
    const there = work.node(p)
    // A leaf of an earlier configuration in the way gives way to the interior node this one needs.
    if (there === undefined || there.f !== 'node') work.put(p, new TreeNode('node', undefined, undefined, undefined))
  }
  const there = work.node(path)
  const type = shape.type === '' || (format !== 'node' && shape.type === DEFAULT_LEAF_TYPE) ? undefined : shape.type
  let data: string | Uint8Array | undefined
  if (format !== 'node') {
    removeBelow(work, path)
    // A stored leaf keeps its value from one start to the next, as long as it still fits the leaf's format.
    const kept = node.get === undefined && there !== undefined && there.f !== 'node' && there.d !== undefined ? checkLeafData(format, there.d) : undefined
    data = node.get !== undefined ? undefined : kept !== undefined && byteLength(kept.data) <= maxBytes ? kept.data : initial
  }
  const made = new TreeNode(format, type, data, acl)
  if (there === undefined || !sameNode(there, made)) {
    work.put(path, made)
  }
  if (work.changes.size > 0) {
    const committed = tree.applyCommit(work)
    if (!committed.ok) return fail(committed.failure.messages.join('; '))
  }
  return { ok: true, mounted: { path, uri: pathToUri(path), node, format, type, maxBytes } }
}

/** Removes what lies below `path` (an interior node of an earlier configuration), deepest first. */
function removeBelow(work: Overlay, path: string): void {
  for (const name of work.childNames(path)) {
    const child = childPath(path, name)
    removeBelow(work, child)
    work.remove(child)
  }
}
