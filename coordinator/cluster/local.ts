/**
 * The `local` backend: the coordinator starts N worker processes on this machine
 * (`node --import tsx worker/main.ts`), each of which registers itself like a pod would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ClusterError, EXIT_CODES } from '../../core/errors.js';
import { forwardLogLine, log, LOG_FORMAT_ENV } from '../../core/log.js';
import { WORKER_ENV } from '../../proto/index.js';
import { tlsEnv } from '../../proto/credentials.js';
import type { ClusterBackend, LaunchContext } from './backend.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Compiled (`npm run build`, the images): worker/main.js with plain node; from source: worker/main.ts through tsx. */
const COMPILED = import.meta.url.endsWith('.js');
const WORKER_MAIN = fileURLToPath(new URL(COMPILED ? '../../worker/main.js' : '../../worker/main.ts', import.meta.url));
/**
 * V8 flags of local worker processes. They share this machine's cores with each other and with the
 * coordinator, so a worker's GC helper threads only take cycles from a busy neighbour: with one GC
 * thread per process the same work costs less CPU in all (bench/transport.ts).
 */
export const LOCAL_WORKER_NODE_FLAGS = ['--single-threaded-gc'];
/** Lines of each worker's output kept for error messages. */
const TAIL_LINES = 20;
/** Exit codes that every worker would hit alike (usage, job, protocol, security): no point waiting for the others. */
const FATAL_EXIT_CODES = new Set<number>([EXIT_CODES.USAGE, EXIT_CODES.JOB_FILE, EXIT_CODES.PROTOCOL, EXIT_CODES.SECURITY]);

export interface LocalBackendOptions {
  /** Which WorkerEngine the processes run. @default 'model' */
  engine?: 'model' | 'echo';
  /** Extra environment for every worker (engine knobs). @default {} */
  env?: Record<string, string>;
  /** Extra environment for one worker, by index (tests give one worker a different behaviour). @default none */
  envFor?: (index: number) => Record<string, string>;
  /**
   * Where worker output lines go. @default stderr log lines written as the coordinator's own (core/log.ts
   * forwardLogLine: the same format, below a progress bar), any other stderr line logged as `worker.output`;
   * stdout kept for errors only
   */
  onOutput?: (worker: string, stream: 'stdout' | 'stderr', line: string) => void;
  /** Between SIGTERM and SIGKILL when stopping. @default 10000 */
  stopGraceMs?: number;
  /** Worker names are `${namePrefix}-${index}`. @default 'local' */
  namePrefix?: string;
}

export interface LocalWorkerProcess {
  readonly name: string;
  readonly index: number;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Settles when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Last lines of stdout and stderr. */
  tail(): string[];
  kill(signal: NodeJS.Signals): void;
}

export class LocalBackend implements ClusterBackend {
  readonly kind = 'local' as const;
  private readonly o: Required<Omit<LocalBackendOptions, 'envFor' | 'onOutput'>> & Pick<LocalBackendOptions, 'envFor' | 'onOutput'>;
  private readonly children: LocalWorkerProcess[] = [];
  private ctx: LaunchContext | null = null;
  private stopping = false;
  private failWith: ((e: ClusterError) => void) | null = null;
  private readonly failed: Promise<never>;

  constructor(options: LocalBackendOptions = {}) {
    this.o = {
      engine: options.engine ?? 'model',
      env: options.env ?? {},
      envFor: options.envFor,
      onOutput: options.onOutput,
      stopGraceMs: options.stopGraceMs ?? 10_000,
      namePrefix: options.namePrefix ?? 'local',
    };
    this.failed = new Promise<never>((_, reject) => (this.failWith = reject));
    this.failed.catch(() => {}); // observed through failures(); never an unhandled rejection
  }

  async start(ctx: LaunchContext): Promise<void> {
    if (this.ctx) throw new ClusterError('local backend already started');
    this.ctx = ctx;
    for (let i = 0; i < ctx.workers; i++) this.spawnWorker();
  }

  /** Starts one more worker process (a late joiner); it registers like the others. */
  spawnWorker(extraEnv: Record<string, string> = {}): LocalWorkerProcess {
    const ctx = this.ctx;
    if (!ctx) throw new ClusterError('local backend: start() before spawnWorker()');
    if (this.stopping) throw new ClusterError('local backend is stopping');
    const index = this.children.length;
    const name = `${this.o.namePrefix}-${index}`;
    const loader = COMPILED ? [] : ['--import', import.meta.resolve('tsx')];
    const child = spawn(process.execPath, [...LOCAL_WORKER_NODE_FLAGS, ...loader, WORKER_MAIN, '--engine', this.o.engine, '--name', name], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        // The coordinator's own metrics port: local workers would all collide on it (set one in `env` to probe a worker).
        NEXTBUY_METRICS_PORT: '',
        ...this.o.env,
        ...(this.o.envFor?.(index) ?? {}),
        ...extraEnv,
        ...tlsEnv(ctx.tls ?? null),
        [WORKER_ENV.coordinator]: ctx.coordinatorAddress,
        [WORKER_ENV.runId]: ctx.runId,
        [WORKER_ENV.account]: ctx.account,
        [WORKER_ENV.date]: ctx.date ?? '',
        // JSON through the pipe: the coordinator writes each line in its own format (human or json).
        [LOG_FORMAT_ENV]: 'json',
        [WORKER_ENV.token]: ctx.token,
        [WORKER_ENV.name]: name,
        [WORKER_ENV.exitWithParent]: '1',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    const keep = (stream: 'stdout' | 'stderr') => {
      let partial = '';
      child[stream]!.setEncoding('utf8');
      child[stream]!.on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop()!;
        for (const line of parts) {
          lines.push(line);
          if (lines.length > TAIL_LINES) lines.shift();
          if (this.o.onOutput) this.o.onOutput(name, stream, line);
          else if (stream === 'stderr' && line.trim() !== '' && !forwardLogLine(line)) log.warn('worker.output', { worker: name, line });
        }
      });
    };
    keep('stdout');
    keep('stderr');
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      child.on('error', () => resolve({ code: null, signal: null }));
    });
    const proc: LocalWorkerProcess = {
      name,
      index,
      pid: child.pid ?? -1,
      child,
      exited,
      tail: () => [...lines],
      kill: (signal) => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      },
    };
    this.children.push(proc);
    void exited.then(({ code }) => this.onExit(proc, code));
    return proc;
  }

  private onExit(proc: LocalWorkerProcess, code: number | null): void {
    if (this.stopping) return;
    const describe = (p: LocalWorkerProcess) => `${p.name} exited (${p.child.exitCode ?? p.child.signalCode}): ${p.tail().slice(-3).map(readableLine).join(' | ') || 'no output'}`;
    if (code !== null && FATAL_EXIT_CODES.has(code)) {
      this.failWith?.(new ClusterError(`local worker ${describe(proc)}`));
      return;
    }
    if (this.children.every((p) => p.child.exitCode !== null || p.child.signalCode !== null)) {
      this.failWith?.(new ClusterError(`every local worker process has exited: ${this.children.map(describe).join('; ')}`));
    }
  }

  /** The processes started so far (exited ones included). */
  processes(): LocalWorkerProcess[] {
    return [...this.children];
  }

  failures(): Promise<never> {
    return this.failed;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const running = this.children.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
    for (const p of running) {
      p.kill('SIGCONT'); // a stopped process cannot act on SIGTERM
      p.kill('SIGTERM');
    }
    await Promise.all(
      running.map(async (p) => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), this.o.stopGraceMs)));
        if ((await Promise.race([p.exited, timeout])) === 'timeout') {
          p.kill('SIGKILL');
          await p.exited;
        }
        clearTimeout(timer);
      }),
    );
    for (const p of this.children) p.child.stdin?.destroy();
  }
}

/** A worker's log record as `event: error` (or its event alone) for an error message; any other line as it is. */
function readableLine(line: string): string {
  try {
    const r = JSON.parse(line) as { event?: unknown; error?: unknown };
    if (typeof r.event === 'string') return typeof r.error === 'string' ? `${r.event}: ${r.error}` : r.event;
  } catch {
    // not a log record
  }
  return line;
}
