/** `npm run schema`: writes the job file's JSON Schema (schema/job.schema.json) from jobs/job-schema.ts. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JOB_SCHEMA_PATH, jobFileJsonSchemaText } from './job-schema.js';

const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', JOB_SCHEMA_PATH);
await mkdir(path.dirname(file), { recursive: true });
await writeFile(file, jobFileJsonSchemaText());
console.log(`wrote ${path.relative(process.cwd(), file)}`);
