/**
 * One structured logger: one JSON object a line (journald-friendly), a child per module, and secrets redacted
 * here, at the logger, rather than at each call site.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 }

export type LogFields = Record<string, unknown>

export interface Logger {
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
  child(bindings: LogFields): Logger
}

/** Field names whose values never reach a log, at any depth. */
const SECRET_KEY = /pass(word)?|secret|pin|networkid|nonce|cred|key|token|mac$|digest|authorization/i

export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== 'object') return value
  if (value instanceof Error) return { name: value.name, message: value.message }
  if (value instanceof Uint8Array) return `<${value.length} bytes>`
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? '[redacted]' : redact(v, depth + 1)
  return out
}

export interface LoggerOptions {
  level?: LogLevel
  /** Where lines go; stdout by default. */
  write?: (line: string) => void
  now?: () => Date
}

/** What every logger of one tree of children shares. */
interface Sink {
  threshold: number
  write: (line: string) => void
  now: () => Date
}

/**
 * A logger is one small object (its sink and its bindings) with its methods on the prototype: a simulated
 * fleet holds a child per module for each of thousands of devices, and closures per logger would cost a few
 * hundred bytes each.
 */
class JsonLogger implements Logger {
  readonly #sink: Sink
  readonly #bindings: LogFields

  constructor(sink: Sink, bindings: LogFields) {
    this.#sink = sink
    this.#bindings = bindings
  }

  debug(msg: string, fields?: LogFields): void {
    this.#emit('debug', msg, fields)
  }

  info(msg: string, fields?: LogFields): void {
    this.#emit('info', msg, fields)
  }

  warn(msg: string, fields?: LogFields): void {
    this.#emit('warn', msg, fields)
  }

  error(msg: string, fields?: LogFields): void {
    this.#emit('error', msg, fields)
  }

  child(more: LogFields): Logger {
    return new JsonLogger(this.#sink, { ...this.#bindings, ...more })
  }

  #emit(level: Exclude<LogLevel, 'silent'>, msg: string, fields?: LogFields): void {
    const sink = this.#sink
    if (LEVEL_RANK[level] < sink.threshold) return
    const record = redact({ ...this.#bindings, ...fields }) as LogFields
    sink.write(JSON.stringify({ time: sink.now().toISOString(), level, ...record, msg }))
  }
}

export function createLogger(options: LoggerOptions = {}, bindings: LogFields = {}): Logger {
  const sink: Sink = {
    threshold: LEVEL_RANK[options.level ?? 'info'],
    write: options.write ?? ((line: string) => process.stdout.write(line + '\n')),
    now: options.now ?? (() => new Date()),
  }
  return new JsonLogger(sink, bindings)
}

/** A logger that drops everything, for tests and library use. */
export const silentLogger: Logger = createLogger({ level: 'silent' })
