/**
 * The WBXML vocabulary of SyncML 1.2: the global tokens of WBXML 1.2 (WAP-192-WBXML, 7.1), the tag code pages of
 * the SyncML Representation Protocol 1.2 (page 0 SyncML, page 1 MetInf) and the public identifiers that name a
 * SyncML document.
 */

/** WBXML 1.2, 7.1: global tokens, the same on every code page. */
export const GlobalToken = {
  SWITCH_PAGE: 0x00,
  END: 0x01,
  ENTITY: 0x02,
  STR_I: 0x03,
  LITERAL: 0x04,
  EXT_I_0: 0x40,
  EXT_I_1: 0x41,
  EXT_I_2: 0x42,
  PI: 0x43,
  LITERAL_C: 0x44,
  EXT_T_0: 0x80,
  EXT_T_1: 0x81,
  EXT_T_2: 0x82,
  STR_T: 0x83,
  LITERAL_A: 0x84,
  EXT_0: 0xc0,
  EXT_1: 0xc1,
  EXT_2: 0xc2,
  OPAQUE: 0xc3,
  LITERAL_AC: 0xc4,
} as const

/** WBXML 1.2, 5.8.2: a tag token is the tag identity in the low six bits plus these two flags. */
export const TAG_ID_MASK = 0x3f
export const TAG_HAS_CONTENT = 0x40
export const TAG_HAS_ATTRIBUTES = 0x80

/** WBXML 1.2, 5.4: the version byte is (major - 1) << 4 | minor; 1.1 to 1.3 all carry a charset field. */
export const WBXML_VERSION_1_2 = 0x02
export const SUPPORTED_VERSIONS: readonly number[] = [0x01, 0x02, 0x03]

/** IANA MIBenum of UTF-8 (WBXML 1.2, 5.6): the only charset DM messages use. */
export const CHARSET_UTF8 = 106

/** WBXML 1.2, 5.5: public id 0 means "the id is a string in the string table at the index that follows". */
export const PUBLIC_ID_IN_STRING_TABLE = 0
/** WBXML 1.2, 7.2: 1 is "unknown or missing public identifier"; the root tag still says what the document is. */
export const PUBLIC_ID_UNKNOWN = 1

export const SYNCML_12_PUBLIC_ID = '-//SYNCML//DTD SyncML 1.2//EN'

/** The SyncML version a document declares, as its root namespace in XML. */
export const SYNCML_12_NAMESPACE = 'SYNCML:SYNCML1.2'
export const METINF_NAMESPACE = 'syncml:metinf'

/**
 * Numeric public ids: 0x0FD1 and 0x0FD3 are the WAP-registered SyncML 1.0 and 1.1 DTDs; 0x1201 is what libwbxml
 * (and devices built on it) write for SyncML 1.2.
 */
export const NUMERIC_PUBLIC_IDS: ReadonlyMap<number, string> = new Map([
  [0x0fd1, 'SYNCML:SYNCML1.0'],
  [0x0fd3, 'SYNCML:SYNCML1.1'],
  [0x1201, SYNCML_12_NAMESPACE],
  [PUBLIC_ID_UNKNOWN, SYNCML_12_NAMESPACE],
])

export const STRING_PUBLIC_IDS: ReadonlyMap<string, string> = new Map([
  ['-//SYNCML//DTD SyncML 1.0//EN', 'SYNCML:SYNCML1.0'],
  ['-//SYNCML//DTD SyncML 1.1//EN', 'SYNCML:SYNCML1.1'],
  [SYNCML_12_PUBLIC_ID, SYNCML_12_NAMESPACE],
])

/** The root namespaces the encoder maps to page 0 (compared in lower case: servers vary the case). */
export const SYNCML_NAMESPACES_LOWER: readonly string[] = ['syncml:syncml1.0', 'syncml:syncml1.1', 'syncml:syncml1.2']

export const PAGE_SYNCML = 0
export const PAGE_METINF = 1

/** OMA-TS-SyncML_RepPro-V1_2, WBXML code page 0: tags 0x05 to 0x3C (0x30 is reserved). */
const SYNCML_PAGE: readonly (string | undefined)[] = [
  'Add', 'Alert', 'Archive', 'Atomic', 'Chal', 'Cmd', 'CmdID', 'CmdRef', 'Copy', 'Cred', 'Data', // 0x05-0x0F
  'Delete', 'Exec', 'Final', 'Get', 'Item', 'Lang', 'LocName', 'LocURI', 'Map', 'MapItem', 'Meta', // 0x10-0x1A
  'MsgID', 'MsgRef', 'NoResp', 'NoResults', 'Put', 'Replace', 'RespURI', 'Results', 'Search', // 0x1B-0x23
  'Sequence', 'SessionID', 'SftDel', 'Source', 'SourceRef', 'Status', 'Sync', 'SyncBody', 'SyncHdr', // 0x24-0x2C
  'SyncML', 'Target', 'TargetRef', undefined, 'VerDTD', 'VerProto', 'NumberOfChanges', 'MoreData', // 0x2D-0x34
  'Field', 'Filter', 'Record', 'FilterType', 'SourceParent', 'TargetParent', 'Move', 'Correlator', // 0x35-0x3C
]

/** OMA-TS-SyncML_MetaInfo-V1_2, WBXML code page 1: tags 0x05 to 0x16. */
const METINF_PAGE: readonly (string | undefined)[] = [
  'Anchor', 'EMI', 'Format', 'FreeID', 'FreeMem', 'Last', 'Mark', 'MaxMsgSize', 'Mem', 'MetInf', // 0x05-0x0E
  'Next', 'NextNonce', 'SharedMem', 'Size', 'Type', 'Version', 'MaxObjSize', 'FieldLevel', // 0x0F-0x16
]

const FIRST_TAG = 0x05

function byToken(names: readonly (string | undefined)[]): ReadonlyMap<number, string> {
  const map = new Map<number, string>()
  names.forEach((name, i) => name !== undefined && map.set(FIRST_TAG + i, name))
  return map
}

function byName(names: readonly (string | undefined)[]): ReadonlyMap<string, number> {
  const map = new Map<string, number>()
  names.forEach((name, i) => name !== undefined && map.set(name, FIRST_TAG + i))
  return map
}

/** Tag name by code page, then by tag identity (without the content and attribute flags). */
export const TAG_NAMES: readonly ReadonlyMap<number, string>[] = [byToken(SYNCML_PAGE), byToken(METINF_PAGE)]

/** Tag identity by code page, then by name. */
export const TAG_TOKENS: readonly ReadonlyMap<string, number>[] = [byName(SYNCML_PAGE), byName(METINF_PAGE)]

export const PAGE_NAMES: readonly string[] = ['SyncML', 'MetInf']
