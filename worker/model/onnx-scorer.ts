/**
 * Scoring with ONNX Runtime (onnxruntime-node): on the CPU by default, with the CUDA execution provider
 * where the image has its library and a GPU is visible. Inputs are the SequenceBatch's dense arrays,
 * passed as views without copying.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelError } from '../../core/errors.js';
import type { SequenceBatch } from '../../proto/shard-batch.js';
import { checkBatch, wideRows } from './batch.js';
import { ONNX_FEATURES_INPUT, ONNX_OUTPUT, ONNX_PRODUCTS_INPUT, ONNX_WIDE_INPUT, specFromOnnx } from './onnx-export.js';
import { embeddedColumns, productIdsOf, type ModelSpec } from './spec.js';

export interface OnnxScorerOptions {
  /** Threads ONNX Runtime uses inside one scoring call. @default 1 */
  threads?: number;
  /**
   * Execution provider. 'auto' takes CUDA when `onnxRuntimes()` lists it, else the CPU. 'cuda' asks for
   * CUDA: where its library or a GPU is missing, or it fails to start, the scorer runs on the CPU and
   * says why in `note` with `fellBack` set (the engine logs it as a warning). @default 'auto'
   */
  device?: OnnxDevice;
  /** Rows per inference call (bounds memory). @default 4096 */
  chunkRows?: number;
}

export type OnnxDevice = 'auto' | 'cpu' | 'cuda';
export const ONNX_DEVICES: readonly OnnxDevice[] = ['auto', 'cpu', 'cuda'];

/** ONNX Runtime flavours usable here, best first, e.g. ['onnxruntime-cpu']. */
export function onnxRuntimes(): string[] {
  return cudaAvailable() ? ['onnxruntime-cuda', 'onnxruntime-cpu'] : ['onnxruntime-cpu'];
}

function cudaAvailable(): boolean {
  return cudaMissing() === null;
}

/** Why the CUDA provider cannot run here, or null when it can be tried. */
function cudaMissing(): string | null {
  let lib: string;
  try {
    const dist = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node'));
    lib = path.join(dist, '..', 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so');
  } catch {
    return 'onnxruntime-node is not installed';
  }
  if (!existsSync(lib)) return `this image has no ONNX Runtime CUDA provider (${path.basename(lib)}; the GPU image installs it)`;
  if (!existsSync('/dev/nvidiactl')) return 'no NVIDIA GPU is visible (/dev/nvidiactl is absent: request nvidia.com/gpu)';
  return null;
}

export class OnnxScorer {
  readonly spec: ModelSpec;
  /** 'onnxruntime-cpu' or 'onnxruntime-cuda'. */
  readonly runtime: string;
  /** Why this provider (e.g. why CUDA was not used). */
  readonly note: string;
  /** CUDA was asked for (device 'cuda') and the CPU scores instead: worth a warning. */
  readonly fellBack: boolean;
  private readonly session: ort.InferenceSession;
  private readonly chunkRows: number;

  private constructor(spec: ModelSpec, session: ort.InferenceSession, runtime: string, note: string, chunkRows: number, fellBack = false) {
    this.spec = spec;
    this.session = session;
    this.runtime = runtime;
    this.note = note;
    this.fellBack = fellBack;
    this.chunkRows = chunkRows;
  }

  static async create(bytes: Uint8Array, options: OnnxScorerOptions = {}): Promise<OnnxScorer> {
    const spec = specFromOnnx(bytes);
    const threads = options.threads ?? 1;
    const device = options.device ?? 'auto';
    if (!ONNX_DEVICES.includes(device)) throw new ModelError(`ONNX device must be one of ${ONNX_DEVICES.join(', ')}, got "${device}"`);
    const missing = device === 'cpu' ? null : cudaMissing();
    const wantCuda = device !== 'cpu' && missing === null;
    const sessionOptions = (providers: string[]): ort.InferenceSession.SessionOptions => ({
      executionProviders: providers,
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    });
    let note = device === 'cpu' ? 'CPU requested' : `CUDA not used: ${missing}`;
    if (wantCuda) {
      try {
        const session = await ort.InferenceSession.create(bytes, sessionOptions(['cuda', 'cpu']));
        return new OnnxScorer(spec, session, 'onnxruntime-cuda', 'CUDA execution provider', options.chunkRows ?? 4096);
      } catch (e) {
        note = `CUDA failed to start (${(e as Error).message.split('\n')[0]})`;
      }
    }
    try {
      const session = await ort.InferenceSession.create(bytes, sessionOptions(['cpu']));
      return new OnnxScorer(spec, session, 'onnxruntime-cpu', `CPU, ${threads} thread(s); ${note}`, options.chunkRows ?? 4096, device === 'cuda');
    } catch (e) {
      throw new ModelError(`ONNX Runtime cannot load this model (${(e as Error).message}): re-export it with this nextbuy`, { cause: e });
    }
  }

  /** Same shapes as SequenceModel.predict: lstm [rows]; attention [rows × products] (default spec.products). */
  async score(batch: SequenceBatch, products?: string[]): Promise<Float32Array> {
    checkBatch(this.spec, batch);
    const spec = this.spec;
    const ids = productIdsOf(this.spec, products);
    const L = spec.maxLength;
    const F = spec.featureNames.length;
    const Wn = spec.wideFeatures.length;
    const width = spec.architecture === 'attention' ? ids.length : 1;
    const out = new Float32Array(batch.size * width);
    for (let from = 0; from < batch.size; from += this.chunkRows) {
      const to = Math.min(from + this.chunkRows, batch.size);
      const n = to - from;
      const feeds: Record<string, ort.Tensor> = {};
      for (const c of embeddedColumns(spec)) feeds[c] = new ort.Tensor('int32', batch.tokens[c]!.subarray(from * L, to * L), [n, L]);
      if (F > 0 && spec.architecture !== 'logistic') feeds[ONNX_FEATURES_INPUT] = new ort.Tensor('float32', batch.features.subarray(from * L * F, to * L * F), [n, L, F]);
      if (Wn > 0) feeds[ONNX_WIDE_INPUT] = new ort.Tensor('float32', wideRows(spec, batch, from, to), [n, spec.architecture === 'attention' ? spec.products.length : 1, Wn]);
      if (spec.architecture === 'attention') feeds[ONNX_PRODUCTS_INPUT] = new ort.Tensor('int32', ids, [ids.length]);
      const result = await this.session.run(feeds);
      const scores = result[ONNX_OUTPUT]!;
      out.set(scores.data as Float32Array, from * width);
      scores.dispose();
    }
    return out;
  }


  async dispose(): Promise<void> {
    await this.session.release();
  }
}
