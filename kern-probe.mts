import { openDuckDB, columnReader } from '/work/main/coordinator/duckdb/index.ts';
import { openInput } from '/work/main/coordinator/preprocess/input.ts';
import { eventsSql } from '/work/main/coordinator/preprocess/events.ts';
import { streamSql, SequenceKernel, type ChunkColumns } from '/work/main/coordinator/preprocess/sequences.ts';
import { ShardBuilder } from '/work/main/coordinator/preprocess/shards.ts';
import { planWindows } from '/work/main/coordinator/preprocess/windows.ts';
import { shardSchema } from '/work/main/proto/shard-batch.ts';
import { Int64Map } from '/work/main/coordinator/preprocess/hash.ts';
import { taobaoJob } from '/work/main/test/helpers/preprocess.ts';
const LIMIT = Number(process.argv[2] ?? 3_000_000);
const job = taobaoJob({ input: { path: `/tmp/nextbuy-bench/events-10000000/parquet/*.parquet`, format: 'parquet', timeFormat: 'epoch_seconds' }, columns: { numeric: [{ column: 'price', min: 0 }] }, validation: { validFromMs: null }, sequence: { lookbackDays: 28 }, shards: { count: 16, batchRows: 4096 }, sampling: { negativeRate: 0.2 } });
const db = await openDuckDB({ memoryLimit: '2GB', tempDirectory: '/tmp/scratch/tmpd' });
const input = await openInput(db, job, 0, 2e12);
await db.run(`CREATE VIEW events AS ${eventsSql(job, input).select}`);
const chunks: ChunkColumns[] = [];
let n = 0;
for await (const ch of db.stream(`SELECT * FROM (${streamSql('events', 'BIGINT', 1, 0, 2e12, false)}) LIMIT ${LIMIT}`)) {
  const r = columnReader(ch);
  chunks.push({ rows: r.rows, key: r.int64Halves(0).slice(), ids: null, ts: r.float64(1).slice(), e: r.uint8(2).slice(), itemHash: r.int64Halves(3).slice(), categoryHash: r.int64Halves(4).slice(), numeric: [r.float64(6).slice()], numericValid: [null] });
  n += r.rows;
}
await db.close();
const plan = planWindows(job, '2026-10-29', ['train', 'score'], true);
const items = new Int64Map(50000, 1); const cats = new Int64Map(5000, 1);
for (const c of chunks) for (let i = 0; i < c.rows; i += 7) { items.set(c.itemHash[2*i]!, c.itemHash[2*i+1]!, 2 + (i % 50000)); cats.set(c.categoryHash[2*i]!, c.categoryHash[2*i+1]!, 2 + (i % 3000)); }
for (let rep = 0; rep < 4; rep++) {
  let batches = 0;
  const sinks = plan.sets.map((w) => {
    const schema = shardSchema({ tokenColumns: ['item', 'category', 'event'], numericColumns: ['price'], products: ['any', 'a'], labelled: true, asOf: w.asOf, maxLength: 50 });
    const layout = { tokenColumns: ['item', 'category', 'event'] as const, numericCount: 1, productCount: 2, labelled: true, batchRows: 4096 };
    const builders = Array.from({ length: 16 }, () => new ShardBuilder(schema, { ...layout, tokenColumns: [...layout.tokenColumns] }));
    return { window: w, labelled: true, negativeRate: w.name === 'train' ? 0.2 : 1, split: w.name === 'train', builders, counts: { add() {} } as never, onFull: (s: number) => { builders[s]!.take(); batches++; }, customers: 0, noHistory: 0, positives: new Float64Array(2) };
  });
  const k = new SequenceKernel({ job, numericCount: 1, sets: sinks, itemIds: items, categoryIds: cats, eventIds: Int32Array.from([2, 3, 4, 5]), productCategories: [null, [1, 2]], onDuplicate: () => {} });
  const t = performance.now();
  for (const c of chunks) k.consume(c);
  k.finish();
  const ms = performance.now() - t;
  console.log(`${n} events: ${ms.toFixed(0)} ms, ${(ms * 1e6 / n).toFixed(0)} ns/event; customers ${sinks.map((s) => s.customers)} batches ${batches}`);
}
