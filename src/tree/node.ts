/**
 * The stored form of one node, and the read/write views the operations work on. Thousands of trees share one
 * process, so a node is one small fixed-shape object (no closures, no child arrays): children are found from
 * the paths themselves.
 */
import type { NodeFormat } from './types.ts'

/**
 * One node. `f` is `node` for an interior node; `t` its MIME type or DDF name (absent: `text/plain` for a
 * leaf); `d` a leaf's data; `a` its ACL (absent: inherited from the nearest ancestor that has one, DM TND 1.2
 * 7.7.1); `c` the ServerID of the party that added it, whose quota it counts in (binding.md §11; absent for the
 * device's own nodes: the standard objects, bootstraps, its bookkeeping). A Replace keeps `c`: a node stays its
 * adder's. Nodes are never mutated once stored: a change stores a new one.
 */
export class TreeNode {
  readonly t: string | undefined
  readonly d: string | Uint8Array | undefined
  readonly a: string | undefined
  readonly c: string | undefined

  constructor(
    readonly f: NodeFormat,
    t: string | undefined,
    d: string | Uint8Array | undefined,
    a: string | undefined,
    c?: string,
  ) {
    this.t = shared(t)
    this.d = shared(d)
    this.a = shared(a)
    this.c = shared(c)
  }
}

/** What a set of nodes weighs: how many, and their bytes (`nodeBytes`). */
export interface Usage {
  nodes: number
  bytes: number
}

/** The UTF-8 length of a text, the length of bytes; 0 for none. */
export function byteLength(value: string | Uint8Array | undefined): number {
  return value === undefined ? 0 : typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.length
}

/**
 * The bytes a node weighs against the tree's byte cap (binding.md §11): its path, type, ACL and data as the tree
 * file stores them (UTF-8), without the few bytes of framing around each.
 */
export function nodeBytes(path: string, node: TreeNode): number {
  return byteLength(path) + byteLength(node.t) + byteLength(node.a) + byteLength(node.d)
}

/** Longest string worth sharing; longer data is rarely identical from tree to tree. */
const SHARED_MAX_LENGTH = 96

/**
 * The engine's one shared copy of a short string. Trees of a fleet hold the same paths, types, ACLs and most of
 * the same values, and V8 keeps a single copy of each string used as a property name (its string table, which
 * the garbage collector prunes), so a path stored in a thousand trees takes its memory once.
 *
 * The holder is a dictionary object (`Object.create(null)`): a literal `{ [s]: 0 }` would add a hidden-class
 * transition for every distinct string to the map all object literals start from, and past some 1,500 of
 * them (a fleet's DevIds) V8 gives every later object literal of the process slow dictionary properties,
 * hundreds of bytes each. Anything but a string (bytes, no value) is given back as it is.
 */
export function shared<T>(s: T): T {
  if (typeof s !== 'string' || s.length > SHARED_MAX_LENGTH) return s
  const holder: Record<string, 0> = Object.create(null) as Record<string, 0>
  holder[s] = 0
  for (const key in holder) return key as T
  return s
}

/** Read access to a set of nodes keyed by path (`''` is the root, `DevInfo/DevId` a node below it). */
export interface NodeView {
  node(path: string): TreeNode | undefined
  /** Names of the direct children of `path`, in creation order. */
  childNames(path: string): string[]
  /** How many nodes the view holds, the root included. */
  size(): number
  /** The bytes of the nodes the view holds (`nodeBytes`, summed). */
  bytes(): number
  /** The nodes (and their bytes) the view holds that the party `serverId` added (`TreeNode.c`). */
  usage(serverId: string): Usage
  /**
   * The ServerID of the party that is creating the account `./DMAcc/<account>` in the transaction this view is
   * the working copy of (or one it is nested in); undefined for an account that existed before, or that the
   * device creates. Committed views know of no account in the making.
   */
  creatorOf?(account: string): string | undefined
}

/** A view whose changes are recorded (a transaction's working copy). */
export interface WritableView extends NodeView {
  put(path: string, node: TreeNode): void
  /** Removes one node; the caller removes the descendants first. */
  remove(path: string): void
  /** Records that the party `serverId` created the account `./DMAcc/<account>` (see `creatorOf`). */
  noteCreator(account: string, serverId: string): void
}

export function parentPath(path: string): string {
  const slash = path.lastIndexOf('/')
  return slash < 0 ? '' : path.slice(0, slash)
}

export function childPath(parent: string, name: string): string {
  return parent === '' ? name : parent + '/' + name
}

/** The URI form of a path, as messages and reasons show it. */
export function pathToUri(path: string): string {
  return path === '' ? '.' : './' + path
}

export function depthOf(path: string): number {
  return path === '' ? 0 : path.split('/').length
}

/** Whether `key` is a direct child of `parent` (given `prefix` = `parent` + `/`, or `''` for the root). */
export function isDirectChild(key: string, prefix: string): boolean {
  return key.length > prefix.length && key.startsWith(prefix) && key.indexOf('/', prefix.length) < 0
}
