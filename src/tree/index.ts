/** The management tree: its contract, the tree itself, accounts, bootstrap, and its entries in the store. */
export type * from './types.ts'
export { ManagementTree, TREE_NAMESPACE, type OpenOptions, type OpenResult, type RestoreResult, type TreeOptions } from './tree.ts'
export type { TreeBase } from './node-map.ts'
export { isSecret, type ExecHandler } from './operations.ts'
export { createStandardTree, updateDescription, DESCRIPTION_NODES, type DeviceDescription, type StandardTreeOptions } from './standard-tree.ts'
export {
  readAccounts, findAccount, markGateway, setNonce, entrySecret, entryNonce, accountTls, type Account, type AccountTls, type AccountAddress, type AccountRole, type AuthEntry,
} from './accounts.ts'
export { applyBootstrap, type BootstrapOptions, type BootstrapResult, type BootstrapTarget } from './bootstrap.ts'
export { TREE_FILE_VERSION } from './tree-file.ts'
export { parseUri, type ParsedUri, type NodeProperty, type UriLimits } from './uri.ts'
export { DEFAULT_EXTERNAL_MAX_BYTES, type MountedNode, type MountOptions, type MountResult } from './mount.ts'
export type { ExternalCall, ExternalNode, ExternalNodeShape, ExternalValue } from './external.ts'
