/**
 * A small deterministic mutation fuzzer: valid seeds from test/fuzz/corpus/<target>/, mutated by a seeded
 * PRNG (bit flips, truncation, splices, huge fields, invalid UTF-8, wrong types), each case run under a
 * timeout. A case passes when it succeeds or ends in an accepted error (a NextbuyError); anything else —
 * another error type, a timeout — is a finding: its input is saved under corpus/crashes/ and replayed
 * first by every later run, until the bug is fixed and the file is kept as a regression seed.
 *
 * Case counts are small for CI; NEXTBUY_FUZZ_SCALE=10 runs ten times as many (same seeds, more cases).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NextbuyError } from '../../core/errors.js';
import { mulberry32 } from '../../core/random.js';

export const CORPUS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'corpus');
const CRASHES = path.join(CORPUS, 'crashes');

const prng = mulberry32;
export { prng };

export function scaledCases(n: number): number {
  const scale = Number(process.env.NEXTBUY_FUZZ_SCALE ?? '1');
  return Math.max(1, Math.round(n * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
}

const enc = new TextEncoder();
/** Values of the wrong type (for text formats: YAML, CSV), and byte sequences that are not UTF-8. */
const WRONG_TYPES = ['~', '[]', '{}', '[1, [2, {a: b}]]', '-1', '1e309', 'NaN', '0x7fffffffffffffff', 'true', '"', "'", '---', '&a [*a]', '!!binary AAAA', '2017-13-45', '\\'];
const INVALID_UTF8 = [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x00]];

export type Mutation = 'bitflip' | 'byte' | 'truncate' | 'splice' | 'delete' | 'duplicate' | 'huge' | 'utf8' | 'wrongType';
const MUTATIONS: Mutation[] = ['bitflip', 'byte', 'truncate', 'splice', 'delete', 'duplicate', 'huge', 'utf8', 'wrongType'];

export interface MutateOptions {
  /** Largest field 'huge' inserts. @default 1 MiB */
  hugeBytes?: number;
  /** Mutations to pick from. @default all */
  mutations?: Mutation[];
}

/** One to three mutations of `seed` (never in place); `donors` feed splices. */
export function mutate(seed: Uint8Array, random: () => number, donors: Uint8Array[] = [], o: MutateOptions = {}): { bytes: Uint8Array; applied: Mutation[] } {
  let b = Buffer.from(seed);
  const applied: Mutation[] = [];
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
  const at = (n = b.length) => Math.floor(random() * (n + 1));
  const count = 1 + Math.floor(random() * 3);
  for (let k = 0; k < count; k++) {
    const m = pick(o.mutations ?? MUTATIONS);
    applied.push(m);
    const i = at();
    switch (m) {
      case 'bitflip':
        if (b.length > 0) {
          const j = Math.min(i, b.length - 1);
          b[j] = b[j]! ^ (1 << Math.floor(random() * 8));
        }
        break;
      case 'byte':
        if (b.length > 0) b[Math.min(i, b.length - 1)] = pick([0, 0xff, 0x7f, 0x80, 0x0a, 0x2c, 0x22, 0x27, Math.floor(random() * 256)]);
        break;
      case 'truncate':
        b = b.subarray(0, i);
        break;
      case 'splice': {
        const donor = donors.length > 0 ? pick(donors) : b;
        const from = at(donor.length);
        const len = Math.floor(random() * Math.min(256, donor.length - from + 1));
        b = Buffer.concat([b.subarray(0, i), donor.subarray(from, from + len), b.subarray(Math.min(b.length, i + Math.floor(random() * 64)))]);
        break;
      }
      case 'delete':
        b = Buffer.concat([b.subarray(0, i), b.subarray(Math.min(b.length, i + 1 + Math.floor(random() * 32)))]);
        break;
      case 'duplicate': {
        const len = Math.floor(random() * 128);
        b = Buffer.concat([b.subarray(0, i + len), b.subarray(i, i + len), b.subarray(i + len)]);
        break;
      }
      case 'huge': {
        const n = Math.floor(random() * (o.hugeBytes ?? 1 << 20));
        b = Buffer.concat([b.subarray(0, i), Buffer.alloc(n, pick(['A', '9', ',', '\n', '"', ' '])), b.subarray(i)]);
        break;
      }
      case 'utf8':
        b = Buffer.concat([b.subarray(0, i), Buffer.from(pick(INVALID_UTF8)), b.subarray(i)]);
        break;
      case 'wrongType': {
        // Replace one "word" (a run of letters/digits/dots) with a value of another type.
        const text = b.toString('latin1');
        const words = [...text.matchAll(/[A-Za-z0-9_.]+/g)];
        if (words.length === 0) break;
        const w = pick(words);
        b = Buffer.concat([b.subarray(0, w.index!), enc.encode(pick(WRONG_TYPES)), b.subarray(w.index! + w[0].length)]);
        break;
      }
    }
  }
  return { bytes: new Uint8Array(b.buffer, b.byteOffset, b.byteLength), applied };
}

export async function loadSeeds(target: string): Promise<{ name: string; bytes: Uint8Array }[]> {
  const dir = path.join(CORPUS, target);
  const names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  return Promise.all(names.map(async (name) => ({ name, bytes: new Uint8Array(await readFile(path.join(dir, name))) })));
}

/** Inputs saved by earlier runs that failed `target`, replayed first. */
async function loadCrashes(target: string): Promise<{ name: string; bytes: Uint8Array }[]> {
  let names: string[];
  try {
    names = (await readdir(CRASHES)).filter((n) => n.startsWith(`${target}-`)).sort();
  } catch {
    return [];
  }
  return Promise.all(names.map(async (name) => ({ name, bytes: new Uint8Array(await readFile(path.join(CRASHES, name))) })));
}

export interface FuzzOptions {
  /** The corpus folder of seeds, e.g. 'job'. */
  target: string;
  cases: number;
  seed: number;
  /** A case running longer than this is a hang. @default 15000 */
  timeoutMs?: number;
  mutate?: MutateOptions;
  /** Runs one input; resolves when the system handled it. */
  run: (input: Uint8Array, label: string) => Promise<void>;
  /** Errors that count as a clean refusal. @default NextbuyError */
  accept?: (e: unknown) => boolean;
}

export interface FuzzReport {
  cases: number;
  /** How the cases ended: 'ok' or the accepted error's class name. */
  outcomes: Record<string, number>;
  /** Findings: label, mutations and what went wrong; each input is saved under corpus/crashes/. */
  findings: string[];
}

const TIMEOUT = Symbol('timeout');

export async function fuzz(o: FuzzOptions): Promise<FuzzReport> {
  const seeds = await loadSeeds(o.target);
  if (seeds.length === 0) throw new Error(`no seeds in ${path.join(CORPUS, o.target)}`);
  const random = prng(o.seed);
  const accept = o.accept ?? ((e: unknown) => e instanceof NextbuyError);
  const report: FuzzReport = { cases: 0, outcomes: {}, findings: [] };
  const inputs: { label: string; bytes: Uint8Array; applied: string }[] = [
    ...(await loadCrashes(o.target)).map((c) => ({ label: `crashes/${c.name}`, bytes: c.bytes, applied: 'replay' })),
    ...seeds.map((s) => ({ label: `${o.target}/${s.name}`, bytes: s.bytes, applied: 'seed' })),
  ];
  for (let i = 0; i < o.cases; i++) {
    const s = seeds[Math.floor(random() * seeds.length)]!;
    const m = mutate(s.bytes, random, seeds.map((x) => x.bytes), o.mutate);
    inputs.push({ label: `${o.target}/${s.name}#${i}`, bytes: m.bytes, applied: m.applied.join('+') });
  }
  for (const input of inputs) {
    report.cases++;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<typeof TIMEOUT>((resolve) => (timer = setTimeout(() => resolve(TIMEOUT), o.timeoutMs ?? 15_000)));
    let problem: string | null = null;
    try {
      const r = await Promise.race([o.run(input.bytes, input.label).then(() => 'ok' as const), timeout]);
      if (r === TIMEOUT) problem = `no answer within ${o.timeoutMs ?? 15_000} ms (a hang)`;
      else report.outcomes.ok = (report.outcomes.ok ?? 0) + 1;
    } catch (e) {
      if (accept(e)) {
        const name = (e as Error).constructor.name;
        report.outcomes[name] = (report.outcomes[name] ?? 0) + 1;
      } else {
        problem = `${(e as Error)?.constructor?.name ?? typeof e}: ${String((e as Error)?.message ?? e).slice(0, 300)}`;
      }
    } finally {
      clearTimeout(timer);
    }
    if (problem) {
      report.findings.push(`${input.label} (${input.applied}): ${problem}`);
      if (input.applied !== 'replay') await saveCrash(o.target, input.bytes);
    }
  }
  return report;
}

async function saveCrash(target: string, bytes: Uint8Array): Promise<void> {
  await mkdir(CRASHES, { recursive: true });
  const id = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  await writeFile(path.join(CRASHES, `${target}-${id}`), bytes);
}
