/**
 * The job file's one definition (jobs/job-schema.ts): the committed JSON Schema is what it generates, the
 * example job files point editors at it and pass it, and the loader's errors name the field and the fix.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv } from 'ajv';
import { parse, parseDocument } from 'yaml';
import { describe, expect, test } from 'vitest';
import { JobFileError } from '../core/errors.js';
import { compileJob, loadJob } from '../jobs/job-file.js';
import { JOB_SCHEMA_PATH, jobFileJsonSchemaText } from '../jobs/job-schema.js';
import { jobFileErrorOf } from './helpers/job-file.js';

const MODELINE = /^# yaml-language-server: \$schema=(\S+)\n/;
const EXAMPLES = ['examples/taobao/job.yaml', 'test/fixtures/retail/job.yaml'];
const CONFIG_MAPS = ['k8s/base/config.yaml', 'k8s/overlays/dev/config.yaml', 'k8s/overlays/prod/config.yaml'];

const minimal = {
  account: 'shop-1',
  input: { path: 'events/*.parquet' },
  columns: { customer: 'cid', time: 'ts', eventType: 'kind' },
  events: { types: ['view', 'buy'], purchase: 'buy' },
  label: { horizonDays: 7 },
};

const errorOf = jobFileErrorOf;

async function validator() {
  const schema = JSON.parse(await readFile(JOB_SCHEMA_PATH, 'utf8'));
  return new Ajv({ allErrors: true, strict: false }).compile(schema);
}

describe('job file schema', () => {
  test('schema/job.schema.json is what the definition generates (run `npm run schema` after changing jobs/job-schema.ts)', async () => {
    expect(await readFile(JOB_SCHEMA_PATH, 'utf8')).toBe(jobFileJsonSchemaText());
  });

  test('the schema carries descriptions and defaults for editors', () => {
    const schema = JSON.parse(jobFileJsonSchemaText());
    expect(schema.required).toEqual(['account', 'input', 'columns', 'events', 'label']);
    expect(schema.properties.model.properties.epochs).toMatchObject({ type: 'integer', default: 16, minimum: 1 });
    expect(schema.properties.sequence.properties.lookbackDays.description).toContain('Features use events in');
    expect(schema.properties.model.additionalProperties).toBe(false);
  });

  test('every example job file names the schema on its first line, and passes it and the loader', async () => {
    const validate = await validator();
    for (const file of EXAMPLES) {
      const text = await readFile(file, 'utf8');
      const schemaPath = MODELINE.exec(text)?.[1];
      expect(schemaPath, file).toBeDefined();
      expect(path.resolve(path.dirname(file), schemaPath!)).toBe(path.resolve(JOB_SCHEMA_PATH));
      expect(validate(parse(text)), `${file}: ${JSON.stringify(validate.errors)}`).toBe(true);
      await loadJob(file);
    }
  });

  test('the job files inside the k8s ConfigMaps name the schema too, and pass it', async () => {
    const validate = await validator();
    for (const file of CONFIG_MAPS) {
      const jobText = parseDocument(await readFile(file, 'utf8')).toJS().data['job.yaml'] as string;
      const schemaPath = MODELINE.exec(jobText)?.[1];
      expect(path.resolve(path.dirname(file), schemaPath!), file).toBe(path.resolve(JOB_SCHEMA_PATH));
      expect(validate(parse(jobText)), `${file}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
  });

  test('what the loader refuses for its shape, the JSON Schema refuses too', async () => {
    const validate = await validator();
    expect(validate(minimal)).toBe(true);
    for (const bad of [
      { ...minimal, modle: {} },
      { ...minimal, model: { epochs: 1.5 } },
      { ...minimal, model: { architectures: ['gru'] } },
      { ...minimal, label: {} },
      { ...minimal, actions: [{ name: 'sms', minScore: 2 }] },
      { ...minimal, cluster: { heartbeatTimeout: 'soon' } },
      { ...minimal, validation: { validFrom: '2017-1-1' } },
    ]) {
      expect(validate(bad), JSON.stringify(bad)).toBe(false);
      expect(() => compileJob(bad, '/jobs/shop.yaml')).toThrow(JobFileError);
    }
  });

  test.each([
    [{ ...minimal, modle: {} }, 'modle', 'is not a known field (did you mean "model"?); known here: account, input, columns'],
    [{ ...minimal, model: { epoch: 3 } }, 'model.epoch', 'is not a known field (did you mean "epochs"?); known here: architectures, embeddingDim'],
    [{ ...minimal, columns: { ...minimal.columns, numeric: [{ colum: 'price' }] } }, 'columns.numeric[0].colum', 'is not a known field (did you mean "column"?); known here: column, min'],
    [{ ...minimal, output: { retain: { runDays: 3 } } }, 'output.retain.runDays', 'is not a known field (did you mean "runsDays"?); known here: runsDays, exportsDays'],
    [{ ...minimal, zzz: 1 }, 'zzz', 'is not a known field; known here: account'],
    [{ ...minimal, model: { epochs: 2.5 } }, 'model.epochs', 'must be a whole number, got 2.5'],
    [{ ...minimal, model: { epochs: 0 } }, 'model.epochs', 'must be ≥ 1, got 0'],
    [{ ...minimal, model: 'big' }, 'model', 'must be a mapping, got "big"'],
    [{ ...minimal, model: { classWeight: 0 } }, 'model.classWeight', 'must be ≥ 0.001, got 0'],
    [{ ...minimal, model: { classWeight: 'heavy' } }, 'model.classWeight', `must be a positive number or 'balanced', got "heavy"`],
    [{ ...minimal, events: { types: ['buy', 'buy'], purchase: 'buy' } }, 'events.types', 'lists an event type twice'],
    [{ ...minimal, validation: { validFrom: '2017-12-01', validTo: '2017-11-01' } }, 'validation.validTo', 'must be after validation.validFrom'],
    [{ ...minimal, features: { windowsDays: [7, 40] } }, 'features.windowsDays[1]', 'must be a whole number of days from 1 to sequence.lookbackDays (30), got 40'],
    [{ ...minimal, actions: [{ name: 'a', topShare: 0.7 }, { name: 'b', topShare: 0.4 }] }, 'actions', 'topShare values sum to 1.1'],
    [{ ...minimal, output: { mode: '0646' } }, 'output.mode', "must not let everyone write, got '0646'"],
    [{ ...minimal, output: { retain: { runsDays: 0 } } }, 'output.retain.runsDays', 'must be ≥ 1, got 0'],
    ['account: x', '(root)', 'must be a mapping, got "account: x"'],
  ])('refuses a bad field naming the file, the field and the fix (%#)', (raw, field, message) => {
    const e = errorOf(raw);
    expect(e.field).toBe(field);
    expect(e.message).toContain(`/jobs/shop.yaml: ${field} ${message}`);
    expect(e.exitCode).toBe(3);
  });

  test('a key written without a value means its default, as before', () => {
    const job = compileJob({ ...minimal, validation: null, model: { epochs: null }, output: { retain: { runsDays: null } } }, '/jobs/shop.yaml');
    expect(job.validation.maxRejectedShare).toBe(0.01);
    expect(job.model.epochs).toBe(16);
    expect(job.output.retain).toEqual({ runsDays: null, exportsDays: null });
  });
});
