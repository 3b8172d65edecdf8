import assert from "node:assert/strict";
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { StackBatch__Output } from "../../proto/evidence.ts";
import { decodeBatch, encodeBatch, WriteAheadLog } from "./wal.ts";
import { decodedBatch } from "../../proto/testing/batches.ts";

const tmp = mkdtempSync(join(tmpdir(), "stella-wal-"));
after(() => {
  rmSync(tmp, { recursive: true, force: true });
});
let n = 0;
const newDir = (): string => join(tmp, `wal-${++n}`);

async function replayAll(dir: string, options: { segmentBytes?: number } = {}) {
  const wal = new WriteAheadLog({ dir, ...options });
  const seen: StackBatch__Output[] = [];
  await wal.replay((b) => seen.push(b));
  return { wal, seen };
}

function segments(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".log"))
    .sort();
}

test("records round-trip through the wire encoding", () => {
  const b = decodedBatch(7);
  const back = decodeBatch(encodeBatch(b));
  assert.equal(back.seq, 7);
  assert.equal(back.samples.length, 2);
  assert.equal(back.samples[0]?.frames[0]?.symbol, b.samples[0]?.frames[0]?.symbol);
  assert.equal(back.window?.endUnixMs, b.window?.endUnixMs);
});

test("concurrent appends are group-committed and replay in order", async () => {
  const dir = newDir();
  const { wal } = await replayAll(dir);
  await Promise.all(Array.from({ length: 200 }, (_, i) => wal.append(decodedBatch(i + 1))));
  assert.equal(wal.stats.appended, 200);
  assert.ok(wal.stats.commits < 20, `expected group commits, got ${wal.stats.commits} commits`);
  await wal.close();
  await assert.rejects(wal.append(decodedBatch(999)), { code: "WAL_CLOSED" });
  const { wal: again, seen } = await replayAll(dir);
  assert.deepEqual(
    seen.map((b) => b.seq),
    Array.from({ length: 200 }, (_, i) => i + 1),
  );
  assert.equal(again.stats.tornRecords, 0);
  await again.close();
});

test("a torn tail (truncated last record) is cut off, counted, and earlier records survive", async () => {
  const dir = newDir();
  const { wal } = await replayAll(dir);
  for (let i = 1; i <= 10; i++) await wal.append(decodedBatch(i));
  await wal.close();
  const [seg] = segments(dir);
  const path = join(dir, seg!);
  const size = statSync(path).size;
  truncateSync(path, size - 5);
  const { wal: w2, seen } = await replayAll(dir);
  assert.deepEqual(
    seen.map((b) => b.seq),
    [1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.equal(w2.stats.tornRecords, 1);
  assert.ok(statSync(path).size < size - 5, "the torn record was truncated away");
  // Appending after the cut works and replays after the survivors.
  await w2.append(decodedBatch(10));
  await w2.close();
  const { wal: w3, seen: seen3 } = await replayAll(dir);
  assert.deepEqual(
    seen3.map((b) => b.seq),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
  assert.equal(w3.stats.tornRecords, 0);
  await w3.close();
});

test("a flipped byte (CRC mismatch) stops replay of its segment there", async () => {
  const dir = newDir();
  const { wal } = await replayAll(dir);
  for (let i = 1; i <= 5; i++) await wal.append(decodedBatch(i));
  await wal.close();
  const path = join(dir, segments(dir)[0]!);
  const data = readFileSync(path);
  data[data.length - 20] = (data[data.length - 20] ?? 0) ^ 0xff;
  writeFileSync(path, data);
  const { wal: w2, seen } = await replayAll(dir);
  assert.deepEqual(
    seen.map((b) => b.seq),
    [1, 2, 3, 4],
  );
  assert.equal(w2.stats.tornRecords, 1);
  await w2.close();
});

test("segments rotate by size and compact() drops whole old segments", async () => {
  const dir = newDir();
  const { wal } = await replayAll(dir, { segmentBytes: 2000 });
  for (let i = 1; i <= 30; i++) await wal.append(decodedBatch(i, "a", 1_000_000 + i * 1000));
  const segs = segments(dir);
  assert.ok(segs.length >= 3, `expected rotation, got ${segs.length} segment(s)`);
  const before = wal.stats.segments;
  const deleted = await wal.compact(1_000_000 + 15 * 1000 + 1);
  assert.ok(deleted >= 1 && deleted < before);
  await wal.close();
  const { wal: w2, seen } = await replayAll(dir, { segmentBytes: 2000 });
  const seqs = seen.map((b) => b.seq);
  assert.equal(seqs.at(-1), 30, "the newest batches survive");
  assert.ok(seqs.length < 30 && (seqs[0] ?? 0) <= 16, `retained ${String(seqs)}`);
  for (const b of seen.slice(1)) assert.ok(b.seq === (seqs[seqs.indexOf(b.seq) - 1] ?? 0) + 1);
  await w2.close();
});
