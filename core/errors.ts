/**
 * nextbuy's errors: a few classes with a stable `code`, each mapped to one CLI exit code.
 * Messages say what happened and what to do; the CLI prints `message` alone, never a stack.
 */
export const EXIT_CODES = {
  USAGE: 2,
  JOB_FILE: 3,
  INPUT: 4,
  CLUSTER: 5,
  MODEL: 6,
  PUBLISH: 7,
  PROTOCOL: 8,
  SECURITY: 9,
  LOCKED: 10,
  /** 128 + SIGTERM, as a shell reports a process a SIGTERM ended. */
  STOPPED: 143,
} as const;

export type ErrorCode = keyof typeof EXIT_CODES;

export class NextbuyError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
  get exitCode(): number {
    return EXIT_CODES[this.code];
  }
}

/** Wrong command line: unknown task, missing flag, bad date. */
export class UsageError extends NextbuyError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** A job file that does not load: names the file and the field. */
export class JobFileError extends NextbuyError {
  readonly file: string;
  readonly field: string;
  constructor(file: string, field: string, problem: string) {
    super('JOB_FILE', `${file}: ${field} ${problem}`);
    this.file = file;
    this.field = field;
  }
}

/**
 * Settings outside the job file that a run needs and lacks or has wrong (workers.yaml, the kube config, the
 * pod's downward-API environment): exit 3, like a job file error, since both are fixed in configuration.
 */
export class ConfigError extends NextbuyError {
  constructor(message: string) {
    super('JOB_FILE', message);
  }
}

/** Input data that cannot be used: unreadable files, missing columns, too many rejected rows. */
export class InputError extends NextbuyError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INPUT', message, options);
  }
}

/** Workers that cannot be started, reached, or that fail a shard too many times. */
export class ClusterError extends NextbuyError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLUSTER', message, options);
  }
}

/** Model training, export, loading or scoring failures (including incompatible artifacts). */
export class ModelError extends NextbuyError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MODEL', message, options);
  }
}

/** A prediction table that cannot be written or committed. */
export class PublishError extends NextbuyError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PUBLISH', message, options);
  }
}

/** A peer that speaks another protocol version, or sends a malformed or oversized payload. */
export class ProtocolError extends NextbuyError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PROTOCOL', message, options);
  }
}

/** Authentication, isolation and path-safety refusals. */
export class SecurityError extends NextbuyError {
  constructor(message: string) {
    super('SECURITY', message);
  }
}

/** Another run of the same account and date holds its lock: nothing was touched. */
export class LockedError extends NextbuyError {
  constructor(message: string) {
    super('LOCKED', message);
  }
}

const SYSTEM_ERRORS: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EIO: 'input/output error',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  EFBIG: 'file too large',
  ENAMETOOLONG: 'file name too long',
  ENOTDIR: 'a path component is not a folder',
  EISDIR: 'is a folder',
};

/** Whether `e` is a file-system failure of the machine (disk full, permissions, …), not a bug in nextbuy. */
export function isSystemIoError(e: unknown): e is NodeJS.ErrnoException {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && code in SYSTEM_ERRORS;
}

/** `cannot write /out/x.json: no space left on device (ENOSPC)`, from a Node file-system error. */
export function describeIoError(e: NodeJS.ErrnoException): string {
  const what = e.syscall ? `${e.syscall} ${e.path ?? ''}`.trim() : (e.path ?? 'a file');
  return `${what} failed: ${SYSTEM_ERRORS[e.code!] ?? e.message} (${e.code})`;
}

/** A graceful stop (SIGTERM, SIGINT): the run saved what it finished; the same command resumes it. */
export class StoppedError extends NextbuyError {
  constructor(message: string) {
    super('STOPPED', message);
  }
}
