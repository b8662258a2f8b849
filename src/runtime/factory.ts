/**
 * The first start's tree (binding.md §5): the standard objects, then the factory bootstrap document applied as
 * OMA DM Bootstrap's customized bootstrap, all or nothing. Later starts restore the persisted tree instead.
 */
import { readFile } from 'node:fs/promises'
import type { SyncMLMessage } from '../codec/syncml-model.ts'
import { decodeMessage } from '../codec/syncml.ts'
import type { AgentConfig } from '../config.ts'
import { applyBootstrap, createStandardTree, ManagementTree, type DeviceDescription } from '../tree/index.ts'

export interface FactoryDocument {
  bytes: Uint8Array
  /** From the file name: `.wbxml` is WBXML, anything else is sniffed (XML or WBXML by its first byte). */
  contentType?: string
  /** The message, once decoded: a fleet decodes its one document once for all its devices. */
  decoded?: SyncMLMessage
}

export async function readFactoryDocument(path: string): Promise<{ ok: true; document: FactoryDocument } | { ok: false; error: string }> {
  try {
    const bytes = new Uint8Array(await readFile(path))
    return { ok: true, document: path.endsWith('.wbxml') ? { bytes, contentType: 'application/vnd.syncml.dm+wbxml' } : { bytes } }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error'
    return { ok: false, error: `factoryBootstrap: cannot read ${path} (${code})` }
  }
}

/** The document with its message decoded, or why it cannot be. */
export function decodeFactoryDocument(document: FactoryDocument): { ok: true; document: FactoryDocument & { decoded: SyncMLMessage } } | { ok: false; error: string } {
  if (document.decoded !== undefined) return { ok: true, document: { ...document, decoded: document.decoded } }
  const decoded = decodeMessage(document.bytes, document.contentType)
  if (!decoded.ok) {
    const at = decoded.error.at === undefined ? '' : ` at ${decoded.error.at}`
    return { ok: false, error: `factoryBootstrap: ${decoded.error.code}${at}: ${decoded.error.message}` }
  }
  return { ok: true, document: { ...document, decoded: decoded.value } }
}

/**
 * Builds the factory tree; the ServerIDs the document configured are the servers to open sessions with.
 * `description` is what the device says of itself, the configuration's values already in it (device-info.ts).
 */
export function buildFactoryTree(config: AgentConfig, document: FactoryDocument, description: DeviceDescription = config.devInfo): { tree: ManagementTree; serverIds: string[] } | { error: string } {
  const decoded = decodeFactoryDocument(document)
  if (!decoded.ok) return { error: decoded.error }
  const { devInfo } = config
  const { man, fwV, swV, hwV, version } = description
  const tree = createStandardTree({
    devId: config.deviceId,
    mod: devInfo.mod,
    lang: devInfo.lang,
    devTyp: devInfo.devTyp,
    man, fwV, swV, hwV, version,
    ...(devInfo.oem !== undefined && { oem: devInfo.oem }),
    limits: config.limits,
  })
  const applied = applyBootstrap(tree, decoded.document.decoded)
  if (!applied.ok) return { error: `factoryBootstrap: ${applied.reason}` }
  return { tree, serverIds: applied.serverIds }
}
