/**
 * One error hierarchy with stable codes, generated from a table. Library code
 * throws these; only src/cli/ turns them into messages and exit codes.
 * Programmer mistakes stay plain TypeErrors.
 */

/** code → [class name, process exit code, one-line explanation for --help]. */
const table = {
  NOT_A_REPOSITORY: ['NotARepositoryError', 10, 'the path or bucket holds no Strata repository'],
  ALREADY_EXISTS: ['AlreadyExistsError', 11, 'a repository already exists there'],
  WRONG_PASSWORD: ['WrongPasswordError', 12, 'no key of the repository opens with this password'],
  NOT_FOUND: ['NotFoundError', 13, 'a snapshot, path or object does not exist'],
  AMBIGUOUS: ['AmbiguousError', 14, 'a snapshot id prefix matches more than one snapshot'],
  CORRUPT: ['CorruptError', 15, 'stored data is damaged: names the object and what it affects'],
  LOCKED: ['LockedError', 16, 'another process holds an exclusive lock on the repository'],
  BACKEND: ['BackendError', 17, 'the storage failed (I/O error, disk full, unreachable server)'],
  NO_SPACE: ['NoSpaceError', 18, 'the repository disk is full; nothing already stored was lost'],
  INTERRUPTED: ['InterruptedError', 130, 'stopped by a signal; what was stored stays usable'],
  UNSAFE_PATH: ['UnsafePathError', 19, 'a name read from the repository would escape its target'],
  USAGE: ['UsageError', 1, 'bad arguments or options'],
} as const;

export type ErrorCode = keyof typeof table;

export class StrataError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.exitCode = table[code][1];
    this.name = table[code][0];
  }
}

/** Exit codes documented in `strata --help` and the README. */
export const exitCodes = [
  { code: 0, meaning: 'success' },
  { code: 1, meaning: table.USAGE[2] },
  { code: 2, meaning: 'unexpected internal error' },
  { code: 3, meaning: 'partial: some source files could not be read (the snapshot names them), or some files could not be restored' },
  ...(Object.keys(table) as ErrorCode[])
    .filter((c) => c !== 'USAGE')
    .map((c) => ({ code: table[c][1] as number, meaning: table[c][2] as string })),
];

export const isStrataError = (e: unknown, code?: ErrorCode): e is StrataError =>
  e instanceof StrataError && (code === undefined || e.code === code);

type Factory = (message: string, options?: { cause?: unknown }) => StrataError;

/** `errors.corrupt('pack 1a2b… is truncated')` etc.: one factory per code. */
export const errors = Object.fromEntries(
  (Object.keys(table) as ErrorCode[]).map((code) => [
    code.toLowerCase().replace(/_(.)/g, (_, c: string) => c.toUpperCase()),
    ((message, options) => new StrataError(code, message, options)) as Factory,
  ]),
) as {
  notARepository: Factory; alreadyExists: Factory; wrongPassword: Factory; notFound: Factory;
  ambiguous: Factory; corrupt: Factory; locked: Factory; backend: Factory; noSpace: Factory;
  interrupted: Factory; unsafePath: Factory; usage: Factory;
};
