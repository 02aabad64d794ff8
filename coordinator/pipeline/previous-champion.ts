/**
 * The account's last published champion, and scoring it on this night's data so that the night's own
 * choice can be compared with it on the same validation customers (and replaced by it when worse).
 *
 *   <out>/models/account=<a>/champions/date=<d>.json   what each published night scored with (champion.json)
 *   <run>/previous/                                     the last published night's models on this night:
 *     preprocess.json, train/, score/                     shards built with *their* vocabulary and products
 *     scores-train/, scores/                              their scores of the training set and the score set
 *     previous.json                                       which night, or why nothing was compared
 *
 * The previous models read their own vocabulary's token ids, so this night's shards cannot serve: the
 * input is preprocessed a second time with the frozen vocabulary (preprocess's `vocabulary` option).
 * Validation customers are chosen by a hash of the customer id alone, so both nights share them.
 */
import { readdir } from 'node:fs/promises';
import { makeDir } from '../../core/file-modes.js';
import path from 'node:path';
import { DEFAULT_CHAMPION, type Job } from '../../jobs/job.js';
import { InputError } from '../../core/errors.js';
import { log } from '../../core/log.js';
import { writeFileDurably, writeJsonDurably } from '../../core/durable-fs.js';
import { loadArtifact } from '../../worker/model/index.js';
import { preprocess, type PreprocessResult, type Product, type Vocabulary } from '../preprocess/index.js';
import { loadArtifactFiles } from './artifacts.js';
import { candidateScores, type ChampionFile, type ProductChampion } from './champion-stage.js';
import { readScoreColumns, readScoreSetRows, scoreKey, type ScoreColumns, type ScoreSetRows } from './collect.js';
import { readJson, type RunFolder } from './run-folder.js';
import type { ModelsFile } from './state.js';
import type { WorkerSession } from './workers.js';

export const championsDir = (outDir: string, account: string) => path.join(outDir, 'models', `account=${account}`, 'champions');

/** Records what a published night scored with, for the next nights to compare against. */
export async function recordPublishedChampions(folder: RunFolder, champions: ChampionFile): Promise<string> {
  const file = path.join(championsDir(folder.outDir, folder.account), `date=${folder.date}.json`);
  await writeJsonDurably(file, champions);
  return file;
}

/** The champion file of the latest published night before `date`, or null. */
export async function lastPublishedBefore(outDir: string, account: string, date: string): Promise<ChampionFile | null> {
  const dir = championsDir(outDir, account);
  const dates = (await readdir(dir).catch(() => [] as string[]))
    .map((f) => /^date=(\d{4}-\d{2}-\d{2})\.json$/.exec(f)?.[1])
    .filter((d): d is string => d !== undefined && d < date)
    .sort();
  const last = dates.at(-1);
  return last ? readJson<ChampionFile>(path.join(dir, `date=${last}.json`)) : null;
}

interface PreviousMarker {
  /** Why nothing was compared; absent when the previous night was scored. */
  skipped?: string;
  record?: ChampionFile;
}

const previousDir = (folder: RunFolder) => path.join(folder.dir, 'previous');
const markerFile = (folder: RunFolder) => path.join(previousDir(folder), 'previous.json');

/**
 * In the score task: preprocesses this night's input with the last published night's vocabulary and
 * scores its training and score sets with that night's champion models. Writes previous.json either way.
 */
export async function scorePreviousChampion(o: { job: Job; folder: RunFolder; models: ModelsFile; session: WorkerSession }): Promise<void> {
  const skip = async (skipped: string) => {
    log.info('champion.previous_skipped', { reason: skipped });
    await writeJsonDurably(markerFile(o.folder), { skipped } satisfies PreviousMarker);
  };
  await makeDir(previousDir(o.folder));
  if (!(o.job.champion ?? DEFAULT_CHAMPION).compareWithPrevious) return skip('champion.compareWithPrevious is off');
  const record = await lastPublishedBefore(o.folder.outDir, o.folder.account, o.folder.date);
  if (!record) return skip(`no night before ${o.folder.date} was published for account ${o.folder.account}`);
  const models = new Map<string, string>();
  for (const p of Object.values(record.products)) for (const m of p.models) models.set(m.modelVersion, m.dir);
  const own = new Set(o.models.models.map((m) => m.modelVersion));
  if ([...models.keys()].every((v) => own.has(v))) {
    return skip(`the last published night (${record.date}) scored with models this night has too: they compete as this night's candidates`);
  }
  let vocabulary: Vocabulary;
  let products: Product[];
  try {
    const artifact = await loadArtifact(models.values().next().value!);
    vocabulary = artifact.vocabulary as Vocabulary;
    products = (artifact.preprocessing as { products?: Product[] } | null)?.products ?? [];
  } catch (e) {
    return skip(`the last published night's model artifacts cannot be read (${(e as Error).message})`);
  }
  if (!vocabulary || products.length === 0) return skip(`the last published night's model artifact has no vocabulary or products to preprocess with`);
  try {
    await scoreWithPrevious(o, record, models, vocabulary, products);
  } catch (e) {
    // The night must not fail because last night's model cannot score it (e.g. the job's features changed since).
    log.warn('champion.previous_failed', { error: (e as Error).message });
    return skip(`scoring the last published night's model on this night failed: ${(e as Error).message}`);
  }
}

async function scoreWithPrevious(
  o: { job: Job; folder: RunFolder; session: WorkerSession },
  record: ChampionFile,
  models: Map<string, string>,
  vocabulary: Vocabulary,
  products: Product[],
): Promise<void> {
  const dir = previousDir(o.folder);
  const pre = await preprocess({ job: o.job, scoreDate: o.folder.date, runDir: dir, vocabulary, products });
  await writeJsonDurably(path.join(dir, 'preprocess.json'), pre);
  for (const [version, artifactDir] of models) o.session.loadModel(version, await loadArtifactFiles(artifactDir));
  for (const [set, scoresDir] of [[pre.train, 'scores-train'], [pre.score, 'scores']] as const) {
    if (!set) throw new InputError(`preprocess with the last published night's vocabulary built no ${scoresDir === 'scores' ? 'score' : 'training'} set`);
    await makeDir(path.join(dir, scoresDir));
    await o.session.scoreShards({
      shards: set.shards,
      modelVersions: [...models.keys()],
      products: products.map((p) => p.name),
      onResult: (shardId, arrow) => writeFileDurably(path.join(dir, scoresDir, `${shardId}.arrow`), arrow),
    });
  }
  await writeJsonDurably(markerFile(o.folder), { record } satisfies PreviousMarker);
}

/** The last published night's champions, scored on this night's customers (see scorePreviousChampion). */
export interface PreviousNight {
  record: ChampionFile;
  /** Its raw (uncalibrated) candidate scores of these validation customers, or why not. */
  validationScores(product: string, ids: string[]): { scores: Float32Array } | { missing: string };
  /** Its models' scores of this night's score set, aligned with `rows`, as the champion's recipe reads them. */
  nightModels(product: string, rows: ScoreSetRows): { name: string; scores: Float32Array }[];
}

export async function loadPreviousNight(folder: RunFolder): Promise<PreviousNight | { skipped: string }> {
  const marker = await readJson<PreviousMarker>(markerFile(folder));
  if (!marker) return { skipped: `the score task of this run did not score the last published model (no ${markerFile(folder)}): rerun 'nextbuy score' to compare with it` };
  if (!marker.record) return { skipped: marker.skipped ?? 'unknown' };
  const record = marker.record;
  const dir = previousDir(folder);
  const pre = await readJson<PreprocessResult>(path.join(dir, 'preprocess.json'));
  if (!pre?.train || !pre.score) return { skipped: `${dir}/preprocess.json is missing: rerun 'nextbuy score'` };
  const trainRows = await readScoreSetRows(pre.train.shards.map((s) => s.file));
  const trainColumns = await readScoreColumns(path.join(dir, 'scores-train'), trainRows);
  const nightRows = await readScoreSetRows(pre.score.shards.map((s) => s.file));
  const loaded = { rows: nightRows, columns: await readScoreColumns(path.join(dir, 'scores'), nightRows) };
  const columnsOf = (p: ProductChampion, columns: ScoreColumns, product: string) =>
    p.models.map((m) => ({ name: m.name, scores: columns.get(scoreKey(m.modelVersion, product)) }));
  return {
    record,
    validationScores(product, ids) {
      const p = record.products[product];
      if (!p) return { missing: `the last published night (${record.date}) has no ${product} model` };
      const cols = columnsOf(p, trainColumns, product);
      const absent = cols.find((c) => !c.scores);
      if (absent) return { missing: `no scores of ${absent.name} from the last published night for ${product}` };
      const all = candidateScores(p, cols as { name: string; scores: Float32Array }[]);
      const out = new Float32Array(ids.length);
      for (let k = 0; k < ids.length; k++) {
        const row = trainRows.index.get(ids[k]!);
        if (row === undefined || Number.isNaN(all[row]!)) return { missing: `validation customer ${k} is not in the last published night's scoring of this training set` };
        out[k] = all[row]!;
      }
      return { scores: out };
    },
    nightModels(product, rows) {
      const p = record.products[product]!;
      return columnsOf(p, loaded.columns, product).map((c) => {
        if (!c.scores) throw new InputError(`no scores of ${c.name} (last published night) for ${product}: rerun 'nextbuy score'`);
        const scores = new Float32Array(rows.customerIds.length);
        rows.customerIds.forEach((id, i) => {
          const row = loaded.rows.index.get(id);
          if (row === undefined) throw new InputError(`customer row ${i} of this night is not in the last published night's scoring: rerun 'nextbuy score'`);
          scores[i] = c.scores![row]!;
        });
        return { name: c.name, scores };
      });
    },
  };
}
