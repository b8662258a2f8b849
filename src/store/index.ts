/** The device's durable state: one journal and one checkpoint under the agent's state directory. */
export {
  CHECKPOINT_POLICY, DiscardingStore, JournalStore, MemoryStore, readDurable,
  type EntrySource, type JournalStoreOptions, type LoadResult, type Store,
} from './store.ts'
export { MemoryFiles, type StoreFiles, type WriteCounts, type WriteKind } from './files.ts'
export { DiskFiles, type DiskFileNames } from './disk.ts'
export { STORE_FORMAT_VERSION, restore, type Namespaces } from './format.ts'
