/**
 * The command line: `nextbuy <task> --account A --date D [--env local|k8s] [--conf job.yaml]`, parsed and checked
 * with node:util's parseArgs and one OPTIONS table (help, suggestions and per-command checks all read it).
 * commander 14 was tried for #20 and not taken: its errors name the offending option only inside English text
 * ("unknown option '--force=yes'", with no "takes no value"), it has no notion of "--from is an option of
 * backfill only", and returning help text instead of printing and exiting needs exitOverride plumbing, so every
 * usage error here would have been re-parsed from its messages, for no fewer lines.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError } from '../core/errors.js';
import { LOG_FORMATS, type LogFormat } from '../core/log.js';
import { parseDateMs } from './job-file.js';
import { closest } from './suggest.js';

export const TASKS = ['preprocess', 'train', 'score', 'evaluate', 'publish', 'run', 'backfill', 'explain', 'gc'] as const;
export type Task = (typeof TASKS)[number];
/** Tasks a backfill can run for each date. */
export const DATE_TASKS = ['preprocess', 'train', 'score', 'evaluate', 'publish', 'run'] as const;
export type DateTask = (typeof DATE_TASKS)[number];

type Command = 'date' | 'backfill' | 'explain' | 'gc';
const commandOf = (t: Task): Command => (t === 'backfill' || t === 'explain' || t === 'gc' ? t : 'date');

const TASK_HELP: Record<Task, string> = {
  preprocess: 'validate the events, build vocabularies and point-in-time sequences, write shards',
  train: 'train the models on the sequences as of DATE minus the label horizon',
  score: 'score every customer known as of DATE with every model, on the workers',
  evaluate: 'ensemble per product and evaluate on the label window after DATE (when it has happened)',
  publish: 'commit the prediction table partitions for ACCOUNT/DATE atomically',
  run: 'all of the above, in order',
  backfill: 'run a task for every date from --from to --to (inclusive), skipping committed dates',
  explain: 'why a customer got their scores on DATE: per model, the events that raised the score most\n' +
    '(and, for the attention model, the events it attended to), with their time, type, item, category',
  gc: 'remove run folders and exports older than N days (output.retain, or --older-than) and say what\n' +
    'it freed; never the published tables, the latest committed date, or a date being run',
};

const SYNOPSIS: Record<Command, string> = {
  date: '--account ACCOUNT --date YYYY-MM-DD [--env local|k8s] [--conf job.yaml] [--workers N] [--allow-stale] [--json]',
  backfill: '--account ACCOUNT --from YYYY-MM-DD --to YYYY-MM-DD [--task run] [--parallel N] [--force] [--allow-stale] [--json]',
  explain: '--account ACCOUNT --date YYYY-MM-DD --customer ID [--product P] [--top N] [--json]',
  gc: '--account ACCOUNT [--conf job.yaml] [--older-than 30d] [--date YYYY-MM-DD] [--dry-run] [--json]',
};

interface OptionSpec {
  name: string;
  /** The value's placeholder; absent for a flag. */
  value?: string;
  short?: string;
  /** One text, or one per command where it differs. */
  help: string | Partial<Record<Command, string>>;
  default?: string;
  commands: readonly Command[];
}

const ALL: readonly Command[] = ['date', 'backfill', 'explain', 'gc'];
/** Every option: the parser, the help texts and the "did you mean" suggestions all read this one list. */
const OPTIONS: OptionSpec[] = [
  { name: 'account', value: 'A', help: "account to run for; must match the job file's account (required)", commands: ALL },
  {
    name: 'date',
    value: 'D',
    help: {
      date: "the night being scored (UTC date); 'today' and 'yesterday' are accepted (required)",
      explain: "the night being scored (UTC date); 'today' and 'yesterday' are accepted (required)",
      gc: 'the day ages are counted from (default: today)',
    },
    commands: ['date', 'explain', 'gc'],
  },
  { name: 'conf', value: 'FILE', help: 'job file (YAML)', default: 'jobs/<account>.yaml', commands: ALL },
  { name: 'env', value: 'ENV', help: 'local: worker processes on this machine; k8s: worker pods (in-cluster)', default: 'local', commands: ['date', 'backfill'] },
  { name: 'workers', value: 'N', help: 'override cluster.workers from the job file', default: 'the job file\'s cluster.workers', commands: ['date', 'backfill'] },
  { name: 'from', value: 'D', help: 'first date of the range (required)', commands: ['backfill'] },
  { name: 'to', value: 'D', help: 'last date of the range, inclusive (required)', commands: ['backfill'] },
  { name: 'task', value: 'T', help: `the task to run per date: ${DATE_TASKS.join(', ')}`, default: 'run', commands: ['backfill'] },
  { name: 'parallel', value: 'N', help: 'dates run at once', default: '1', commands: ['backfill'] },
  { name: 'force', help: 'rerun dates that are already committed', commands: ['backfill'] },
  {
    name: 'allow-stale',
    help: 'build even when the input looks stale (validation.maxStaleness, validation.minLastDayShare);\nthe run\'s preprocess stats and summary record it',
    commands: ['date', 'backfill'],
  },
  { name: 'customer', value: 'ID', help: 'the customer id as in the input (required)', commands: ['explain'] },
  { name: 'product', value: 'P', help: 'only the models for product P', default: 'all models', commands: ['explain'] },
  { name: 'top', value: 'N', help: 'events per list', default: '5', commands: ['explain'] },
  { name: 'older-than', value: 'N', help: 'remove what is dated more than N days (e.g. 30d) before --date', default: "the job file's output.retain", commands: ['gc'] },
  { name: 'dry-run', help: 'say what would be removed, remove nothing', commands: ['gc'] },
  {
    name: 'json',
    help: {
      date: 'print the run summary (the run folder\'s summary.json) as JSON on stdout, and nothing else',
      backfill: 'print one JSON object per date and line instead of the table',
      explain: 'print JSON instead of text',
      gc: 'print what was removed and kept as JSON',
    },
    commands: ALL,
  },
  {
    name: 'log-format',
    value: 'F',
    help: 'log lines on stderr: json (one object per line) or human (one short line each);\nalso NEXTBUY_LOG_FORMAT, which worker processes inherit',
    default: 'human on a terminal, else json',
    commands: ALL,
  },
  { name: 'help', short: 'h', help: 'this text', commands: ALL },
  { name: 'version', help: 'the nextbuy version', commands: ALL },
];

const EXIT_CODES_TEXT =
  'Exit codes: 0 ok, 1 internal error, 2 usage, 3 job file, 4 input data, 5 cluster, 6 model, 7 publish, 8 protocol, 9 security, 10 date locked by another run, 143 stopped by SIGTERM/SIGINT.';

function optionLines(command: Command | null): string[] {
  const lines: string[] = [];
  for (const o of OPTIONS) {
    if (command && !o.commands.includes(command)) continue;
    if (!command && (o.name === 'from' || o.name === 'to')) {
      if (o.name === 'from') lines.push(...formatOption('--from, --to', 'backfill: the date range (inclusive)'));
      continue;
    }
    let help = typeof o.help === 'string' ? o.help : command ? o.help[command]! : Object.entries(o.help).map(([c, h]) => `${c === 'date' ? 'a task' : c}: ${h}`).join('\n');
    if (!command && o.commands.length === 1) help = `${o.commands[0]}: ${help}`;
    if (o.default !== undefined) help += ` (default: ${o.default})`;
    lines.push(...formatOption(`--${o.name}${o.value ? ` ${o.value}` : ''}${o.short ? `, -${o.short}` : ''}`, help));
  }
  return lines;
}

function formatOption(left: string, help: string): string[] {
  const [first, ...rest] = help.split('\n');
  return [`  ${left.padEnd(15)} ${first}`, ...rest.map((l) => `${' '.repeat(18)}${l}`)];
}

export const USAGE = [
  'nextbuy — nightly purchase-propensity training and scoring',
  '',
  'Usage:',
  `  nextbuy <task> ${SYNOPSIS.date}`,
  `  nextbuy backfill ${SYNOPSIS.backfill}`,
  `  nextbuy explain ${SYNOPSIS.explain}`,
  `  nextbuy gc ${SYNOPSIS.gc}`,
  '  nextbuy <task> --help     that task\'s options and defaults',
  '  nextbuy --version',
  '',
  "Tasks (each reads what the earlier ones left in the run folder; 'run' does them all in order):",
  ...TASKS.flatMap((t) => TASK_HELP[t].split('\n').map((l, i) => `  ${(i === 0 ? t : '').padEnd(12)} ${l}`)),
  '',
  'Options:',
  ...optionLines(null),
  '',
  EXIT_CODES_TEXT,
].join('\n');

/** `nextbuy <task> --help`: the task's own synopsis, its options only, with their defaults. */
export function taskUsage(task: Task): string {
  const command = commandOf(task);
  const what = task === 'run' ? 'preprocess, train, score, evaluate and publish one night, in order' : TASK_HELP[task];
  return [
    `nextbuy ${task} — ${what.replace('\n', '\n  ')}`,
    '',
    'Usage:',
    `  nextbuy ${task} ${SYNOPSIS[command]}`,
    '',
    'Options:',
    ...optionLines(command),
    '',
    EXIT_CODES_TEXT,
  ].join('\n');
}

/** The version in nextbuy's package.json: beside jobs/ in the sources, two folders up from dist/jobs/ in an image. */
export function packageVersion(): string {
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'nextbuy' && pkg.version) return pkg.version;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return 'unknown (no nextbuy package.json found beside the command)';
}

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
  /** --log-format; null: NEXTBUY_LOG_FORMAT, else by terminal (core/log.ts). */
  logFormat: LogFormat | null;
  /** gc: days, or null for the job's output.retain. */
  olderThanDays: number | null;
  dryRun: boolean;
}


/** `help`: print `text` (help or the version) and exit 0. */
export type ParsedCommand = { help: true; text: string } | { help: false; args: CliArgs };

export function parseCommandLine(argv: string[], now: Date = new Date()): ParsedCommand {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(OPTIONS.map((o) => [o.name, { type: o.value ? ('string' as const) : ('boolean' as const), ...(o.short ? { short: o.short } : {}) }])),
    });
  } catch (e) {
    throw parseFailure(e, argv);
  }
  const values = parsed.values as Partial<Record<string, string | boolean>> as Values;
  const { positionals } = parsed;
  if (values.version) return { help: true, text: packageVersion() };
  if (positionals.length > 1) throw new UsageError(`expected one task, got "${positionals.join(' ')}". Run 'nextbuy --help'`);
  const task = positionals[0] as Task | undefined;
  if (task !== undefined && !TASKS.includes(task)) {
    const near = closest(task, TASKS);
    throw new UsageError(`unknown task "${task}"${near ? ` (did you mean "${near}"?)` : ''}: use one of ${TASKS.join(', ')}`);
  }
  if (values.help || task === undefined) return { help: true, text: task ? taskUsage(task) : USAGE };
  for (const o of OPTIONS) {
    if (values[o.name as keyof Values] !== undefined && !o.commands.includes(commandOf(task))) {
      throw new UsageError(`--${o.name} is not an option of ${task} (${o.commands.join(', ').replace('date', 'the single-date tasks')} only). Run 'nextbuy ${task} --help' for its options`);
    }
  }
  const account = values.account;
  if (!account) throw new UsageError('--account is required, e.g. --account taobao');
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(account)) throw new UsageError(`--account must be lowercase letters, digits, "-" and "_", got "${account}"`);
  const env = values.env ?? 'local';
  if (env !== 'local' && env !== 'k8s') throw new UsageError(`--env must be local or k8s, got "${env}"`);
  const logFormat = values['log-format'] ?? null;
  if (logFormat !== null && !(LOG_FORMATS as readonly string[]).includes(logFormat)) throw new UsageError(`--log-format must be ${LOG_FORMATS.join(' or ')}, got "${logFormat}"`);
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
    logFormat: logFormat as LogFormat | null,
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

type Values = {
  [K in 'account' | 'date' | 'conf' | 'env' | 'workers' | 'from' | 'to' | 'task' | 'parallel' | 'customer' | 'product' | 'top' | 'older-than' | 'log-format']?: string;
} & { [K in 'force' | 'allow-stale' | 'json' | 'help' | 'version' | 'dry-run']?: boolean };

/** Node's parser errors, said the way the rest of the command line says things: an unknown option gets a suggestion. */
function parseFailure(e: unknown, argv: string[]): UsageError {
  const task = argv.find((a) => (TASKS as readonly string[]).includes(a));
  const helpHint = `Run 'nextbuy ${task ? `${task} ` : ''}--help' for the options`;
  const code = (e as NodeJS.ErrnoException).code;
  const message = (e as Error).message;
  const unknown = code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /^Unknown option '(-{1,2})([^']*)'/.exec(message) : null;
  if (unknown) {
    const [, dashes, name] = unknown;
    const known = OPTIONS.filter((o) => !task || o.commands.includes(commandOf(task as Task)));
    const near = closest(name!.split('=')[0]!, known.map((o) => o.name));
    return new UsageError(`unknown option ${dashes}${name}${near ? ` (did you mean --${near}?)` : ''}. ${helpHint}`);
  }
  const missing = /^Option '(?:-\w, )?(--[\w-]+) <value>' argument missing/.exec(message);
  if (missing) return new UsageError(`${missing[1]} needs a value. ${helpHint}`);
  const flag = /^Option '(?:-\w, )?(--[\w-]+)' does not take an argument/.exec(message);
  if (flag) return new UsageError(`${flag[1]} is a flag and takes no value (write ${flag[1]} alone). ${helpHint}`);
  return new UsageError(`${message}. ${helpHint}`);
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
