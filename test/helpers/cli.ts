/** Runs the real `nextbuy` command in a child process, the way a user does. */
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin/nextbuy.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return runProcess(process.execPath, [BIN, ...args], { cwd: options.cwd ?? ROOT, env: { ...process.env, ...options.env } });
}

/** Runs a program to its end, collecting its output. */
export function runProcess(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/**
 * A copy of the Taobao example job in a fresh temp folder (with the data beside it), with `overrides`
 * merged into its top-level sections; returns the job file path.
 */
export async function taobaoJob(overrides: Record<string, Record<string, unknown>> = {}): Promise<{ dir: string; conf: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-e2e-'));
  const job = parse(await readFile(path.join(ROOT, 'examples/taobao/job.yaml'), 'utf8')) as Record<string, Record<string, unknown>>;
  for (const [section, values] of Object.entries(overrides)) job[section] = { ...(job[section] ?? {}), ...values };
  job.output = { dir: 'out' };
  await copyFile(path.join(ROOT, 'examples/taobao/events.csv.gz'), path.join(dir, 'events.csv.gz'));
  const conf = path.join(dir, 'job.yaml');
  await writeFile(conf, stringify(job));
  return { dir, conf };
}

/**
 * A copy of the retail transaction-log fixture (test/fixtures/retail: its job file and transactions.csv)
 * in a fresh temp folder, with `overrides` merged into the job's top-level sections.
 */
export async function retailJob(overrides: Record<string, Record<string, unknown> | unknown[]> = {}): Promise<{ dir: string; conf: string }> {
  const from = path.join(ROOT, 'test/fixtures/retail');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-retail-'));
  const job = parse(await readFile(path.join(from, 'job.yaml'), 'utf8')) as Record<string, unknown>;
  for (const [section, values] of Object.entries(overrides)) {
    job[section] = Array.isArray(values) ? values : { ...((job[section] as Record<string, unknown>) ?? {}), ...values };
  }
  await copyFile(path.join(from, 'transactions.csv'), path.join(dir, 'transactions.csv'));
  const conf = path.join(dir, 'job.yaml');
  await writeFile(conf, stringify(job));
  return { dir, conf };
}
