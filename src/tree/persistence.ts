/**
 * Saving and restoring a whole tree. The byte layout lives in `tree-file.ts`; restore also runs the account
 * validator, so a tree that decodes but would not pass a commit is refused too.
 */
import { ManagementTree, type RestoreResult, type TreeOptions } from './tree.ts'

export { TREE_FILE_VERSION } from './tree-file.ts'

export function serializeTree(tree: ManagementTree): Uint8Array {
  return tree.serialize()
}

/** The tree in `bytes`, or a one-line reason it cannot be used (corrupt, newer version, invalid account). */
export function restoreTree(bytes: Uint8Array, options?: TreeOptions): RestoreResult {
  return ManagementTree.restore(bytes, options)
}
