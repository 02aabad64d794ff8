/**
 * The command line a person expects: --version, help per command with its defaults (no JSDoc markers),
 * and "did you mean" for a misspelt command or option instead of Node's parser message.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { UsageError } from '../core/errors.js';
import { parseCommandLine, taskUsage, USAGE } from '../jobs/args.js';
import { closest, editDistance } from '../jobs/suggest.js';
import { ROOT, runCli } from './helpers/cli.js';

const usageError = (argv: string[]): string => {
  try {
    parseCommandLine(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error(`${argv.join(' ')} parsed without error`);
};

describe('the real command', () => {
  test('--version prints the package version', async () => {
    const { version } = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${version}\n`);
  });

  test('run --help prints the run command\'s own help with its defaults', async () => {
    const r = await runCli(['run', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^nextbuy run — /);
    expect(r.stdout).toMatch(/nextbuy run --account ACCOUNT --date YYYY-MM-DD/);
    expect(r.stdout).toMatch(/--conf FILE\s+job file \(YAML\) \(default: jobs\/<account>\.yaml\)/);
    expect(r.stdout).toMatch(/--env ENV\s+.*\(default: local\)/);
    expect(r.stdout).not.toMatch(/--parallel|--customer|backfill:/);
    expect(r.stdout).not.toMatch(/@default/);
  });

  test('a misspelt option gets a suggestion and exit 2, not Node\'s parser message', async () => {
    const r = await runCli(['run', '--account', 'taobao', '--dat', '2017-12-02']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option --dat \(did you mean --date\?\)\. Run 'nextbuy run --help' for the options/);
    expect(r.stderr).not.toMatch(/positional argument/);
  });
});

describe('parsing', () => {
  test('a misspelt command gets the nearest task', () => {
    expect(usageError(['rnu', '--account', 'a', '--date', '2017-12-02'])).toMatch(/unknown task "rnu" \(did you mean "run"\?\)/);
    expect(usageError(['backfil', '--account', 'a'])).toMatch(/did you mean "backfill"\?/);
    expect(usageError(['frobnicate', '--account', 'a'])).not.toMatch(/did you mean/);
  });

  test('misspelt options are matched against the command\'s own options', () => {
    expect(usageError(['backfill', '--account', 'a', '--forse'])).toMatch(/unknown option --forse \(did you mean --force\?\)/);
    expect(usageError(['explain', '--account', 'a', '--custmer', '1'])).toMatch(/did you mean --customer\?/);
    expect(usageError(['run', '--acount=a'])).toMatch(/unknown option --acount \(did you mean --account\?\)/);
    expect(usageError(['run', '--zzzzzz'])).toMatch(/^unknown option --zzzzzz\. Run 'nextbuy run --help'/);
  });

  test('a missing value, a value on a flag and another command\'s option are said plainly', () => {
    expect(usageError(['run', '--account', 'a', '--date'])).toMatch(/^--date needs a value/);
    expect(usageError(['backfill', '--force=yes'])).toMatch(/^--force is a flag and takes no value/);
    expect(usageError(['run', '--account', 'a', '--date', '2017-12-02', '--from', '2017-12-01'])).toMatch(/^--from is not an option of run \(backfill only\)/);
  });

  test('--help per task, --version anywhere; help texts carry no JSDoc markers', () => {
    expect(parseCommandLine(['backfill', '-h'])).toEqual({ help: true, text: taskUsage('backfill') });
    expect(parseCommandLine([])).toEqual({ help: true, text: USAGE });
    expect(parseCommandLine(['run', '--version'])).toMatchObject({ help: true, text: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(taskUsage('backfill')).toMatch(/--parallel N\s+dates run at once \(default: 1\)/);
    expect(taskUsage('explain')).toMatch(/--top N\s+events per list \(default: 5\)/);
    for (const text of [USAGE, taskUsage('run'), taskUsage('backfill'), taskUsage('explain')]) expect(text).not.toMatch(/@\w+/);
  });
});

test('--log-format json|human; without it, core/log.ts decides (NEXTBUY_LOG_FORMAT, else by terminal)', () => {
  const parsed = (argv: string[]) => {
    const p = parseCommandLine(['run', '--account', 'a', '--date', '2017-12-02', ...argv], new Date());
    if (p.help) throw new Error('expected args');
    return p.args.logFormat;
  };
  expect(parsed([])).toBeNull();
  expect(parsed(['--log-format', 'json'])).toBe('json');
  expect(parsed(['--log-format=human'])).toBe('human');
  expect(usageError(['run', '--account', 'a', '--date', '2017-12-02', '--log-format', 'xml'])).toMatch(/^--log-format must be json or human, got "xml"/);
  expect(usageError(['backfill', '--account', 'a', '--log-fromat', 'json'])).toMatch(/did you mean --log-format\?/);
  expect(taskUsage('backfill')).toMatch(/--log-format F\s+log lines on stderr: json \(one object per line\) or human/);
});

test('edit distance counts a swap of neighbours as one edit', () => {
  expect(editDistance('date', 'date')).toBe(0);
  expect(editDistance('dat', 'date')).toBe(1);
  expect(editDistance('jsno', 'json')).toBe(1);
  expect(editDistance('kitten', 'sitting')).toBe(3);
  expect(closest('wrokers', ['workers', 'force'])).toBe('workers');
  expect(closest('x', ['env', 'top'])).toBeNull();
});
