import assert from "node:assert/strict";
import { test } from "node:test";
import { SeqDedup } from "./dedup.ts";

test("contiguous seqs advance the watermark; gaps stay sparse until filled", () => {
  const d = new SeqDedup();
  assert.equal(d.has("a", 1), false);
  d.mark("a", 1);
  d.mark("a", 2);
  d.mark("a", 4);
  assert.equal(d.watermark("a"), 2);
  assert.equal(d.has("a", 3), false);
  assert.equal(d.has("a", 4), true);
  d.mark("a", 3);
  assert.equal(d.watermark("a"), 4);
  assert.equal(d.has("b", 1), false, "agents are independent");
});

test("the sparse set is bounded: the oldest gap is given up and counted", () => {
  const d = new SeqDedup({ maxSparse: 3 });
  d.mark("a", 1);
  for (const s of [3, 5, 7, 9]) d.mark("a", s);
  // 4 sparse > 3: watermark jumps to 3 (gap 2 given up), then absorbs nothing (4 missing).
  assert.equal(d.watermark("a"), 3);
  assert.equal(d.stats.forcedAdvances, 1);
  assert.equal(d.has("a", 2), true);
  assert.equal(d.has("a", 4), false);
  assert.equal(d.has("a", 9), true);
});

test("agents are evicted least recently used first", () => {
  const d = new SeqDedup({ maxAgents: 2 });
  d.mark("a", 1);
  d.mark("b", 1);
  assert.equal(d.has("a", 1), true); // touches a
  d.mark("c", 1); // evicts b
  assert.equal(d.stats.evictedAgents, 1);
  assert.equal(d.has("b", 1), false);
  assert.equal(d.has("a", 1), true);
  assert.equal(d.has("c", 1), true);
});
