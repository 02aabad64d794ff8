/**
 * `summary.json`: what one invocation of runDate did, as a scheduler reads it (Airflow XCom, Argo output
 * parameters, a shell script with jq). The RunSummary with the vocabulary's words left out (their counts kept):
 * the words are in preprocess.json and run to megabytes on large accounts.
 */
import type { PreprocessResult } from '../preprocess/index.js';
import type { RunSummary } from './index.js';

export const SUMMARY_FORMAT_VERSION = 1;

export interface SummaryJson extends Omit<RunSummary, 'preprocess'> {
  /** Bumped when a field changes meaning or goes away (fields may be added without a bump). */
  formatVersion: typeof SUMMARY_FORMAT_VERSION;
  preprocess: (Omit<PreprocessResult, 'vocabulary'> & { vocabularySizes: Record<string, number> }) | null;
}

export function summaryJson(s: RunSummary): SummaryJson {
  let preprocess: SummaryJson['preprocess'] = null;
  if (s.preprocess) {
    const { vocabulary, ...rest } = s.preprocess;
    const vocabularySizes = Object.fromEntries(Object.entries(vocabulary).filter(([, v]) => Array.isArray(v)).map(([k, v]) => [k, (v as string[]).length]));
    preprocess = { ...rest, vocabularySizes };
  }
  return { formatVersion: SUMMARY_FORMAT_VERSION, ...s, preprocess };
}
