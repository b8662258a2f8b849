/**
 * The WBXML vocabulary of SyncML 1.2: the global tokens of WBXML 1.2 (WAP-192-WBXML, 7.1), the tag code pages of
 * the SyncML Representation Protocol 1.2 (page 0 SyncML, page 1 MetInf) and the public identifiers that name a
 * SyncML document. Plain constants without imports, so that the bundler puts the numbers in place of the names
 * (esbuild inlines constants only from a module that imports nothing).
 */

/**
 * WBXML 1.2, 7.1: the global tokens SyncML uses, the same on every code page. Every global token has 0 to 4 in
 * its low six bits, which no tag has (tags start at 0x05): the others (LITERAL 0x04 with its attribute and
 * content variants, EXT_I_0..2 0x40-0x42, PI 0x43, EXT_T_0..2 0x80-0x82, EXT_0..2 0xC0-0xC2) never occur in
 * SyncML and are told apart by those bits.
 */
export const SWITCH_PAGE = 0x00
export const END = 0x01
export const ENTITY = 0x02
export const STR_I = 0x03
export const LITERAL = 0x04
export const STR_T = 0x83
export const OPAQUE = 0xc3

/** WBXML 1.2, 5.8.2: a tag token is the tag identity in the low six bits plus these two flags. */
export const TAG_ID_MASK = 0x3f
export const TAG_HAS_CONTENT = 0x40
export const TAG_HAS_ATTRIBUTES = 0x80
/** The first tag identity of every code page: 0x00 to 0x04 are global tokens. */
export const FIRST_TAG = 0x05

/** WBXML 1.2, 5.4: the version byte is (major - 1) << 4 | minor; 1.1 to 1.3 all carry a charset field. */
export const WBXML_VERSION_1_2 = 0x02
export const SUPPORTED_VERSIONS: readonly number[] = [0x01, 0x02, 0x03]

/** IANA MIBenum of UTF-8 (WBXML 1.2, 5.6): the only charset DM messages use. */
export const CHARSET_UTF8 = 106

/** WBXML 1.2, 5.5: public id 0 means "the id is a string in the string table at the index that follows". */
export const PUBLIC_ID_IN_STRING_TABLE = 0

export const SYNCML_12_PUBLIC_ID = '-//SYNCML//DTD SyncML 1.2//EN'
/** `SYNCML_NAMESPACE` of gwmo.ts, spelt out here to keep this module free of imports. */
const SYNCML_12_NAMESPACE = 'SYNCML:SYNCML1.2'

/**
 * Numeric public ids: 0x0FD1 and 0x0FD3 are the WAP-registered SyncML 1.0 and 1.1 DTDs; 0x1201 is what libwbxml
 * (and devices built on it) write for SyncML 1.2; 1 is "unknown or missing public identifier" (WBXML 1.2, 7.2),
 * where the root tag still says what the document is.
 */
export const NUMERIC_PUBLIC_IDS: ReadonlyMap<number, string> = new Map([
  [0x0fd1, 'SYNCML:SYNCML1.0'],
  [0x0fd3, 'SYNCML:SYNCML1.1'],
  [0x1201, SYNCML_12_NAMESPACE],
  [1, SYNCML_12_NAMESPACE],
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

/** Stands for a reserved tag identity in the tables below; no element of SyncML can be named so. */
const RESERVED = '-'

/**
 * The tag names of each code page in token order from 0x05, as one string each: the names are the whole table,
 * and the token is the position. Page 0: OMA-TS-SyncML_RepPro-V1_2, tags 0x05 to 0x3C (0x30 is reserved).
 * Page 1: OMA-TS-SyncML_MetaInfo-V1_2, tags 0x05 to 0x16.
 */
const TAG_PAGES: readonly (readonly string[])[] = [
  // 0x05-0x0F
  ('Add Alert Archive Atomic Chal Cmd CmdID CmdRef Copy Cred Data ' +
    // 0x10-0x1A
    'Delete Exec Final Get Item Lang LocName LocURI Map MapItem Meta ' +
    // 0x1B-0x23
    'MsgID MsgRef NoResp NoResults Put Replace RespURI Results Search ' +
    // 0x24-0x2C
    'Sequence SessionID SftDel Source SourceRef Status Sync SyncBody SyncHdr ' +
    // 0x2D-0x34
    `SyncML Target TargetRef ${RESERVED} VerDTD VerProto NumberOfChanges MoreData ` +
    // 0x35-0x3C
    'Field Filter Record FilterType SourceParent TargetParent Move Correlator'
  ).split(' '),
  // 0x05-0x0E, then 0x0F-0x16
  ('Anchor EMI Format FreeID FreeMem Last Mark MaxMsgSize Mem MetInf ' +
    'Next NextNonce SharedMem Size Type Version MaxObjSize FieldLevel'
  ).split(' '),
]

export const PAGE_NAMES: readonly string[] = ['SyncML', 'MetInf']

/** Whether a code page of that number exists. */
export function isCodePage(page: number): boolean {
  return TAG_PAGES[page] !== undefined
}

/** The tag name of a tag identity (without the content and attribute flags) on a code page. */
export function tagName(page: number, id: number): string | undefined {
  const name = TAG_PAGES[page]?.[id - FIRST_TAG]
  return name === RESERVED ? undefined : name
}

/** The tag identity of a name on a code page, or -1 when the page has no such tag. */
export function tagId(page: number, name: string): number {
  const index = name === RESERVED ? -1 : TAG_PAGES[page]!.indexOf(name)
  return index < 0 ? -1 : FIRST_TAG + index
}
