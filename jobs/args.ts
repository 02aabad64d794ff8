/** The command line: `nextbuy <task> --account A --date D [--env local|k8s] [--conf job.yaml]`, parsed and checked. */
import { parseArgs } from 'node:util';
import { UsageError } from '../core/errors.js';
import { parseDateMs } from './job-file.js';

export const TASKS = ['preprocess', 'train', 'score', 'evaluate', 'publish', 'run', 'backfill', 'explain', 'gc'] as const;
export type Task = (typeof TASKS)[number];
/** Tasks a backfill can run for each date. */
export const DATE_TASKS = ['preprocess', 'train', 'score', 'evaluate', 'publish', 'run'] as const;
export type DateTask = (typeof DATE_TASKS)[number];

export const USAGE = `nextbuy — nightly purchase-propensity training and scoring

Usage:
  nextbuy <task> --account ACCOUNT --date YYYY-MM-DD [--env local|k8s] [--conf job.yaml] [--allow-stale]
  nextbuy backfill --account ACCOUNT --from YYYY-MM-DD --to YYYY-MM-DD [--task run] [--parallel N] [--force] [--allow-stale]
  nextbuy explain --account ACCOUNT --date YYYY-MM-DD --customer ID [--product P] [--top N] [--json]
  nextbuy gc --account ACCOUNT [--older-than 30d] [--date YYYY-MM-DD] [--dry-run] [--json]

Tasks (each reads what the earlier ones left in the run folder; 'run' does them all in order):
  preprocess   validate the events, build vocabularies and point-in-time sequences, write shards
  train        train the models on the sequences as of DATE minus the label horizon
  score        score every customer known as of DATE with every model, on the workers
  evaluate     ensemble per product and evaluate on the label window after DATE (when it has happened)
  publish      commit the prediction table partitions for ACCOUNT/DATE atomically
  run          all of the above
  backfill     run a task for every date from --from to --to (inclusive), skipping committed dates
  explain      why a customer got their scores on DATE: per model, the events that raised the score most
               (and, for the attention model, the events it attended to), with their time, type, item, category
  gc           remove run folders and exports older than N days (output.retain, or --older-than) and say what
               it freed; never the published tables, the latest committed date, or a date being run

Options:
  --account A     account to run for; must match the job file's account
  --date D        the night being scored (UTC date); 'today' and 'yesterday' are accepted
  --conf FILE     job file (YAML) @default jobs/<account>.yaml
  --env ENV       local: worker processes on this machine; k8s: worker pods (in-cluster) @default local
  --workers N     override cluster.workers from the job file
  --from, --to    backfill date range (inclusive)
  --task T        backfill: the task to run per date @default run
  --parallel N    backfill: dates run at once @default 1
  --force         backfill: rerun dates that are already committed
  --allow-stale   build even when the input looks stale (validation.maxStaleness, validation.minLastDayShare);
                  the run's preprocess stats and summary record it
  --customer ID   explain: the customer id as in the input
  --product P     explain: only the models for product P @default all models
  --top N         explain: events per list @default 5
  --json          explain: print JSON instead of text
  --older-than N  gc: remove what is dated more than N days (e.g. 30d) before --date @default output.retain
  --dry-run       gc: say what would be removed, remove nothing
  --help          this text

Exit codes: 0 ok, 1 internal error, 2 usage, 3 job file, 4 input data, 5 cluster, 6 model, 7 publish, 8 protocol, 9 security, 10 date locked by another run, 143 stopped by SIGTERM/SIGINT.`;

export interface CliArgs {
  task: Task;
  account: string;
  /** 'YYYY-MM-DD' for every task but backfill. */
  date: string | null;
  conf: string;
  env: 'local' | 'k8s';
  workers: number | null;
  from: string | null;
  to: string | null;
  backfillTask: DateTask;
  parallel: number;
  force: boolean;
  /** Build from input the freshness gate finds stale. */
  allowStale: boolean;
  /** explain only. */
  customer: string | null;
  product: string | null;
  top: number;
  json: boolean;
  /** gc: days, or null for the job's output.retain. */
  olderThanDays: number | null;
  dryRun: boolean;
}

export type ParsedCommand = { help: true } | { help: false; args: CliArgs };

export function parseCommandLine(argv: string[], now: Date = new Date()): ParsedCommand {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        account: { type: 'string' },
        date: { type: 'string' },
        conf: { type: 'string' },
        env: { type: 'string' },
        workers: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        task: { type: 'string' },
        parallel: { type: 'string' },
        force: { type: 'boolean' },
        'allow-stale': { type: 'boolean' },
        customer: { type: 'string' },
        product: { type: 'string' },
        top: { type: 'string' },
        json: { type: 'boolean' },
        'older-than': { type: 'string' },
        'dry-run': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}. Run 'nextbuy --help' for the options`);
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) return { help: true };
  if (positionals.length > 1) throw new UsageError(`expected one task, got "${positionals.join(' ')}". Run 'nextbuy --help'`);
  const task = positionals[0] as Task;
  if (!TASKS.includes(task)) throw new UsageError(`unknown task "${positionals[0]}": use one of ${TASKS.join(', ')}`);
  const account = values.account;
  if (!account) throw new UsageError('--account is required, e.g. --account taobao');
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(account)) throw new UsageError(`--account must be lowercase letters, digits, "-" and "_", got "${account}"`);
  const env = values.env ?? 'local';
  if (env !== 'local' && env !== 'k8s') throw new UsageError(`--env must be local or k8s, got "${env}"`);
  const backfillTask = (values.task ?? 'run') as DateTask;
  if (!DATE_TASKS.includes(backfillTask)) throw new UsageError(`--task must be one of ${DATE_TASKS.join(', ')}, got "${values.task}"`);

  const args: CliArgs = {
    task,
    account,
    date: null,
    conf: values.conf ?? `jobs/${account}.yaml`,
    env,
    workers: values.workers === undefined ? null : positiveInt(values.workers, '--workers'),
    from: null,
    to: null,
    backfillTask,
    parallel: values.parallel === undefined ? 1 : positiveInt(values.parallel, '--parallel'),
    force: values.force ?? false,
    allowStale: values['allow-stale'] ?? false,
    customer: values.customer ?? null,
    product: values.product ?? null,
    top: values.top === undefined ? 5 : positiveInt(values.top, '--top'),
    json: values.json ?? false,
    olderThanDays: values['older-than'] === undefined ? null : daysArg(values['older-than'], '--older-than'),
    dryRun: values['dry-run'] ?? false,
  };
  if (task === 'explain' && !args.customer) throw new UsageError('explain needs --customer, e.g. --customer 1000047');
  if (task === 'backfill') {
    if (!values.from || !values.to) throw new UsageError('backfill needs --from and --to, e.g. --from 2017-11-30 --to 2017-12-02');
    args.from = dateArg(values.from, '--from', now);
    args.to = dateArg(values.to, '--to', now);
    if (args.from > args.to) throw new UsageError(`--from ${args.from} is after --to ${args.to}`);
  } else if (task === 'gc') {
    args.date = dateArg(values.date ?? 'today', '--date', now);
  } else {
    if (!values.date) throw new UsageError('--date is required, e.g. --date 2017-12-02');
    args.date = dateArg(values.date, '--date', now);
  }
  return { help: false, args };
}

function dateArg(v: string, flag: string, now: Date): string {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  if (v === 'today') return new Date(today).toISOString().slice(0, 10);
  if (v === 'yesterday') return new Date(today - 86_400_000).toISOString().slice(0, 10);
  if (parseDateMs(v) === null) throw new UsageError(`${flag} must be a date YYYY-MM-DD (or today/yesterday), got "${v}"`);
  return v;
}

function daysArg(v: string, flag: string): number {
  const m = /^(\d+)d?$/.exec(v);
  if (!m || Number(m[1]) < 1) throw new UsageError(`${flag} must be a whole number of days ≥ 1, like 30d, got "${v}"`);
  return Number(m[1]);
}

function positiveInt(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a whole number ≥ 1, got "${v}"`);
  return n;
}
