/**
 * Model artifacts: one versioned folder (or, on the wire, the same files in LoadModelRequest.files) holding
 * everything needed to score and audit a model:
 *
 *   manifest.json      format, formatVersion, the nextbuy version that wrote it, spec, training window,
 *                      metrics, and a sha256 + size for every other file; written last
 *   weights.f32        the flat weight vector, float32 little-endian, in spec.ts's layout order
 *   model.onnx         the ONNX export (absent when the architecture could not be exported)
 *   vocabulary.json    the coordinator's vocabularies (opaque here)
 *   preprocessing.json the coordinator's preprocessing config (opaque here)
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { writeFileDurably } from '../../core/durable-fs.js';
import { makeDir } from '../../core/file-modes.js';
import path from 'node:path';
import { ModelError } from '../../core/errors.js';
import { parseSpec, weightCount, type ModelSpec } from './spec.js';

export const ARTIFACT_FORMAT = 'nextbuy-model';
/** Bump when a change makes older nextbuy versions unable to read new artifacts (or the reverse). */
export const ARTIFACT_FORMAT_VERSION = 1;

const FILES = {
  manifest: 'manifest.json',
  weights: 'weights.f32',
  onnx: 'model.onnx',
  vocabulary: 'vocabulary.json',
  preprocessing: 'preprocessing.json',
} as const;

export const NEXTBUY_VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

export interface ArtifactContents {
  /** The id the model is published and scored under. */
  modelVersion: string;
  spec: ModelSpec;
  weights: Float32Array;
  /** The ONNX export; null when the architecture could not be exported (scoring then uses tfjs). */
  onnx: Uint8Array | null;
  /** The coordinator's vocabularies (opaque JSON here). */
  vocabulary: unknown;
  /** The coordinator's preprocessing config (opaque JSON here). */
  preprocessing: unknown;
  /** The data window the model was trained on, e.g. { from, to, asOf }. */
  trainingWindow: Record<string, unknown>;
  metrics: Record<string, unknown>;
}

export interface ArtifactManifest {
  format: typeof ARTIFACT_FORMAT;
  formatVersion: number;
  /** The nextbuy version that wrote the artifact. */
  nextbuyVersion: string;
  modelVersion: string;
  createdAt: string;
  architecture: ModelSpec['architecture'];
  spec: ModelSpec;
  trainingWindow: Record<string, unknown>;
  metrics: Record<string, unknown>;
  files: Record<string, { bytes: number; sha256: string }>;
}

export interface LoadedArtifact extends ArtifactContents {
  manifest: ArtifactManifest;
}

/** The artifact's files in memory (what LoadModelRequest.files carries). */
export function artifactToFiles(a: ArtifactContents, now: Date = new Date()): Map<string, Uint8Array> {
  const spec = parseSpec(a.spec);
  if (a.weights.length !== weightCount(spec)) {
    throw new ModelError(`artifact ${a.modelVersion}: ${a.weights.length} weights where its spec needs ${weightCount(spec)}`);
  }
  const files = new Map<string, Uint8Array>();
  files.set(FILES.weights, new Uint8Array(a.weights.buffer.slice(a.weights.byteOffset, a.weights.byteOffset + a.weights.byteLength)));
  if (a.onnx) files.set(FILES.onnx, a.onnx);
  files.set(FILES.vocabulary, jsonBytes(a.vocabulary ?? null));
  files.set(FILES.preprocessing, jsonBytes(a.preprocessing ?? null));
  const manifest: ArtifactManifest = {
    format: ARTIFACT_FORMAT,
    formatVersion: ARTIFACT_FORMAT_VERSION,
    nextbuyVersion: NEXTBUY_VERSION,
    modelVersion: a.modelVersion,
    createdAt: now.toISOString(),
    architecture: spec.architecture,
    spec,
    trainingWindow: a.trainingWindow,
    metrics: a.metrics,
    files: Object.fromEntries([...files].map(([name, bytes]) => [name, { bytes: bytes.byteLength, sha256: sha256(bytes) }])),
  };
  files.set(FILES.manifest, jsonBytes(manifest));
  return files;
}

/** Reads and checks an artifact from its files: format, version, checksums, weight count. */
export function artifactFromFiles(files: Map<string, Uint8Array>): LoadedArtifact {
  const raw = files.get(FILES.manifest);
  if (!raw) {
    throw new ModelError(`not a nextbuy model artifact: there is no ${FILES.manifest} (files: ${[...files.keys()].join(', ') || 'none'}); point at the folder saveArtifact wrote`);
  }
  let manifest: ArtifactManifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(raw)) as ArtifactManifest;
  } catch (e) {
    throw new ModelError(`the artifact's ${FILES.manifest} is not valid JSON (${(e as Error).message}): the artifact is damaged; copy it again or retrain`, { cause: e });
  }
  if (manifest?.format !== ARTIFACT_FORMAT) {
    throw new ModelError(`not a nextbuy model artifact: ${FILES.manifest} has format ${JSON.stringify(manifest?.format)}, expected "${ARTIFACT_FORMAT}"`);
  }
  if (manifest.formatVersion !== ARTIFACT_FORMAT_VERSION) {
    const newer = typeof manifest.formatVersion === 'number' && manifest.formatVersion > ARTIFACT_FORMAT_VERSION;
    throw new ModelError(
      `model ${manifest.modelVersion ?? '(unnamed)'} was written by nextbuy ${manifest.nextbuyVersion ?? 'unknown'} in artifact format ${manifest.formatVersion}; ` +
        `this nextbuy (${NEXTBUY_VERSION}) reads format ${ARTIFACT_FORMAT_VERSION}. ` +
        (newer
          ? `Upgrade this installation to nextbuy ${manifest.nextbuyVersion ?? 'of that version'} or later, or retrain the model with this version.`
          : `Retrain the model with this version (or score it with nextbuy ${manifest.nextbuyVersion ?? 'of that version'}).`),
    );
  }
  for (const [name, expected] of Object.entries(manifest.files ?? {})) {
    const bytes = files.get(name);
    if (!bytes) throw new ModelError(`model ${manifest.modelVersion}: file ${name} is missing from the artifact; copy the whole folder`);
    if (bytes.byteLength !== expected.bytes || sha256(bytes) !== expected.sha256) {
      throw new ModelError(`model ${manifest.modelVersion}: file ${name} does not match its checksum in ${FILES.manifest} (damaged or edited); copy the artifact again or retrain`);
    }
  }
  const spec = parseSpec(manifest.spec);
  const weightBytes = files.get(FILES.weights);
  if (!weightBytes) throw new ModelError(`model ${manifest.modelVersion}: the artifact has no ${FILES.weights}`);
  const weights = new Float32Array(weightBytes.buffer.slice(weightBytes.byteOffset, weightBytes.byteOffset + weightBytes.byteLength));
  if (weights.length !== weightCount(spec)) {
    throw new ModelError(`model ${manifest.modelVersion}: ${FILES.weights} holds ${weights.length} weights where its spec needs ${weightCount(spec)}; retrain the model`);
  }
  return {
    manifest,
    modelVersion: manifest.modelVersion,
    spec,
    weights,
    onnx: files.get(FILES.onnx) ?? null,
    vocabulary: parseJson(files.get(FILES.vocabulary)),
    preprocessing: parseJson(files.get(FILES.preprocessing)),
    trainingWindow: manifest.trainingWindow,
    metrics: manifest.metrics,
  };
}

/** Writes the artifact into `dir` (created if needed); the manifest goes last, so a folder with one is complete. */
export async function saveArtifact(dir: string, contents: ArtifactContents): Promise<ArtifactManifest> {
  const files = artifactToFiles(contents);
  await makeDir(dir);
  for (const [name, bytes] of files) {
    if (name === FILES.manifest) continue;
    await writeFileDurably(path.join(dir, name), bytes);
  }
  await writeFileDurably(path.join(dir, FILES.manifest), files.get(FILES.manifest)!);
  return JSON.parse(new TextDecoder().decode(files.get(FILES.manifest)!)) as ArtifactManifest;
}

/** The artifact's files as written in `dir`. */
export async function artifactFiles(dir: string): Promise<Map<string, Uint8Array>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    throw new ModelError(`cannot read model artifact folder ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const files = new Map<string, Uint8Array>();
  for (const name of names) {
    if (!(Object.values(FILES) as string[]).includes(name)) continue;
    files.set(name, new Uint8Array(await readFile(path.join(dir, name))));
  }
  return files;
}

export async function loadArtifact(dir: string): Promise<LoadedArtifact> {
  return artifactFromFiles(await artifactFiles(dir));
}


function jsonBytes(v: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(v, null, 2));
}

function parseJson(bytes: Uint8Array | undefined): unknown {
  return bytes ? JSON.parse(new TextDecoder().decode(bytes)) : null;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
