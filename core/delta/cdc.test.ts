import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import { cdcBoundaries, chunk, DEFAULT_CDC, GEAR_SEED } from "./cdc.ts";
import { DeltaError } from "./errors.ts";
import { merkleRoot } from "./merkle.ts";
import { prngBytes } from "./test-helpers.ts";

const data = prngBytes(4 << 20, 7);

test("chunks tile the input, respect min/max, and average near avgSize on random data", () => {
  const cs = chunk(data);
  let at = 0;
  for (const [i, c] of cs.entries()) {
    assert.equal(c.offset, at);
    if (i < cs.length - 1)
      assert.ok(
        c.length >= DEFAULT_CDC.minSize && c.length <= DEFAULT_CDC.maxSize,
        `chunk ${i}: ${c.length}`,
      );
    assert.equal(
      c.id,
      createHash("sha256")
        .update(data.subarray(c.offset, c.offset + c.length))
        .digest("hex"),
    );
    at += c.length;
  }
  assert.equal(at, data.length);
  const avg = data.length / cs.length;
  // Normalised FastCDC: min + about avg, so 8–12 KiB for 2/8 KiB.
  assert.ok(avg > 8192 && avg < 12288, `average ${avg}`);
});

test("gear table and boundaries are pinned: same seed, same chunks, on every machine", () => {
  assert.equal(GEAR_SEED, "stella-fastcdc-gear-v1");
  const ends = cdcBoundaries(data.subarray(0, 1 << 20));
  const digest = createHash("sha256").update(ends.join(",")).digest("hex");
  assert.equal(digest, PINNED_BOUNDARIES, `boundaries ${ends.slice(0, 5).join(",")}…`);
});

test("an insertion at the start shifts chunks without changing them: almost all ids shared", () => {
  const shifted = new Uint8Array(data.length + 1000);
  shifted.set(prngBytes(1000, 99), 0);
  shifted.set(data, 1000);
  const a = new Set(chunk(data).map((c) => c.id));
  const b = chunk(shifted);
  const shared = b.filter((c) => a.has(c.id)).length;
  assert.ok(shared >= b.length - 2, `${shared} of ${b.length} shared`);
});

test("a run of zeros is cut at maxSize, and the last chunk may be short", () => {
  const z = new Uint8Array(200_000);
  const cs = chunk(z);
  assert.deepEqual(
    cs.map((c) => c.length),
    [65536, 65536, 65536, 3392],
  );
  assert.equal(new Set(cs.slice(0, 3).map((c) => c.id)).size, 1);
  assert.deepEqual(chunk(new Uint8Array(0)), []);
  assert.deepEqual(
    chunk(new Uint8Array(100)).map((c) => c.length),
    [100],
  );
});

test("parameters are validated with the field and the limit in the message", () => {
  assert.throws(
    () => cdcBoundaries(data, { ...DEFAULT_CDC, avgSize: 5000 }),
    (e: unknown) =>
      e instanceof DeltaError && e.code === "DELTA_INVALID_PARAMS" && /avgSize.*power of two/.test(e.message),
  );
  assert.throws(
    () => cdcBoundaries(data, { ...DEFAULT_CDC, minSize: 9000 }),
    /minSize must be in \[64, avgSize=8192\]/,
  );
  assert.throws(() => cdcBoundaries(data, { ...DEFAULT_CDC, maxSize: 4096 }), /maxSize/);
});

test("merkle root: RFC 6962 shape with 0x00 leaf / 0x01 node prefixes", () => {
  const ids = ["aa", "bb", "cc"].map((s) => createHash("sha256").update(s).digest("hex"));
  const h = (...p: Buffer[]): Buffer => createHash("sha256").update(Buffer.concat(p)).digest();
  const leaf = (id: string): Buffer => h(Buffer.of(0), Buffer.from(id, "hex"));
  const node = (l: Buffer, r: Buffer): Buffer => h(Buffer.of(1), l, r);
  assert.equal(merkleRoot([]), createHash("sha256").digest("hex"));
  assert.equal(merkleRoot([ids[0]!]), leaf(ids[0]!).toString("hex"));
  assert.equal(merkleRoot(ids.slice(0, 2)), node(leaf(ids[0]!), leaf(ids[1]!)).toString("hex"));
  // n = 3: k = 2, so the left subtree holds two leaves and the right one.
  assert.equal(merkleRoot(ids), node(node(leaf(ids[0]!), leaf(ids[1]!)), leaf(ids[2]!)).toString("hex"));
  assert.notEqual(merkleRoot([ids[1]!, ids[0]!]), merkleRoot(ids.slice(0, 2)), "order matters");
  assert.throws(() => merkleRoot(["XYZ"]), /64 lower-case hex/);
});

// sha256 of the comma-joined end offsets of prngBytes(4 MiB, 7)[0, 1 MiB) with DEFAULT_CDC; starts 8566,19804,24845.
const PINNED_BOUNDARIES = "6abed13c1a0d9e73d5ada9b989b8871219b18b2cf73b9a4aa60cd1b5e4ff8c59";
