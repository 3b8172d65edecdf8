// Hostile and corrupted deltas: each class is refused with its own error code, and applyDeltaFile
// leaves nothing behind (no output, no temporary file).
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { applyDelta, applyDeltaFile } from "./apply.ts";
import { createDelta } from "./create.ts";
import { DeltaError, type DeltaErrorCode } from "./errors.ts";
import { type DeltaModel, type DeltaOp, encodeDelta, HEADER_SIZE, parseDelta, unzstd } from "./format.ts";
import { prngBytes } from "./test-helpers.ts";
import { ByteWriter } from "./varint.ts";

// A base and target that exercise every op kind: whole chunks, ranges, ADD and ADD-rel.
const base = prngBytes(300_000, 5);
const target = (() => {
  const t = Buffer.from(base);
  for (let i = 150_000; i < 152_000; i += 40) t[i] = t[i]! + 1; // ADD-rel
  return Buffer.concat([t.subarray(0, 100_000), prngBytes(500, 6), t.subarray(100_000)]); // ADD
})();
const good = createDelta(base, target);

test("the fixture uses every op kind", () => {
  const s = good.summary;
  assert.ok(
    s.copyChunkOps > 0 && s.addRelOps > 0 && s.addOps > s.addRelOps && s.copyRangeOps >= 0,
    JSON.stringify(s),
  );
  assert.ok(Buffer.from(applyDelta(base, good.bin)).equals(target));
});

/** Writes `bin` as a file, applies it through applyDeltaFile, and checks the error and the directory. */
function refused(
  bin: Uint8Array,
  code: DeltaErrorCode,
  msg: RegExp,
  opts: { maxAddBytes?: number; base?: Uint8Array } = {},
): void {
  const dir = mkdtempSync(join(tmpdir(), "delta-corrupt-"));
  writeFileSync(join(dir, "base"), opts.base ?? base);
  writeFileSync(join(dir, "delta.bin"), bin);
  assert.throws(
    () => applyDeltaFile(join(dir, "base"), join(dir, "delta.bin"), join(dir, "out"), opts),
    (e: unknown) => {
      assert.ok(e instanceof DeltaError, String(e));
      assert.equal(e.code, code, e.message);
      assert.match(e.message, msg);
      assert.match(e.message, /delta\.bin/, "the message names the file");
      return true;
    },
  );
  assert.deepEqual(readdirSync(dir).sort(), ["base", "delta.bin"], "nothing written");
}

function flip(bin: Uint8Array, at: number): Uint8Array {
  const b = Uint8Array.from(bin);
  b[at] = b[at]! ^ 0x40;
  return b;
}

/** Section offsets of the good delta, from its header. */
const sec = (() => {
  const h = Buffer.from(good.bin);
  const tableLen = h.readUInt32LE(108) * 48;
  const ops = HEADER_SIZE + tableLen;
  const lit = ops + Number(h.readBigUInt64LE(124));
  const diff = lit + Number(h.readBigUInt64LE(140));
  return { table: HEADER_SIZE, ops, lit, diff, end: h.length };
})();

test("flipped bytes: header, chunk table, op stream, literal and diff areas each fail their CRC-32", () => {
  assert.ok(sec.lit > sec.ops && sec.diff > sec.lit && sec.end > sec.diff, JSON.stringify(sec));
  refused(flip(good.bin, 0), "DELTA_MALFORMED", /magic/);
  for (const at of [8, 30, 50, 100, 120, 179])
    refused(flip(good.bin, at), "DELTA_CHECKSUM", /header: CRC-32/);
  refused(flip(good.bin, sec.table + 3), "DELTA_CHECKSUM", /chunk table: CRC-32/);
  refused(flip(good.bin, sec.ops + 5), "DELTA_CHECKSUM", /op stream: CRC-32/);
  refused(flip(good.bin, sec.lit + 7), "DELTA_CHECKSUM", /ADD literal area: CRC-32/);
  refused(flip(good.bin, sec.end - 9), "DELTA_CHECKSUM", /ADD diff area: CRC-32/);
});

test("truncation and trailing bytes are refused before anything is decompressed", () => {
  for (const n of [0, 7, HEADER_SIZE - 1])
    refused(good.bin.subarray(0, n), "DELTA_MALFORMED", /shorter than the 184-byte header|magic/);
  for (const n of [HEADER_SIZE, sec.ops + 2, good.bin.length - 1]) {
    refused(good.bin.subarray(0, n), "DELTA_MALFORMED", /truncated or trailing/);
  }
  refused(Buffer.concat([good.bin, Buffer.of(0)]), "DELTA_MALFORMED", /truncated or trailing/);
});

/** The good delta's model and areas, to re-encode with a hostile change (valid CRCs: an attacker's file). */
function craft(change: (m: DeltaModel) => void, opsRaw?: Uint8Array): Uint8Array {
  const p = parseDelta(good.bin, "good");
  const literal = unzstd(p.literalCompressed, p.literalRawSize, "lit", p.literalDict ? base : undefined);
  const m: DeltaModel = { ...p, chunks: p.chunks.map((c) => ({ ...c })), ops: p.ops.map((o) => ({ ...o })) };
  change(m);
  return encodeDelta(m, literal, p.diff, base, opsRaw).bin;
}

function firstOp<K extends DeltaOp["op"]>(m: DeltaModel, kind: K): Extract<DeltaOp, { op: K }> {
  const o = m.ops.find((x) => x.op === kind);
  assert.ok(o, `no ${kind} op`);
  return o as Extract<DeltaOp, { op: K }>;
}

test("COPY base-range and ADD-rel outside the base are refused", () => {
  const m0 = parseDelta(good.bin, "g");
  assert.ok(m0.ops.some((o) => o.op === "add-rel"));
  refused(
    craft((m) => {
      firstOp(m, "add-rel").offset = base.length - 10;
    }),
    "DELTA_OUT_OF_RANGE",
    /outside the base \(base_size 300000\)/,
  );
  // A COPY range with an out-of-range offset, written by hand: tag = length*4 + 1, then zigzag offset.
  const w = new ByteWriter();
  w.uvarint(target.length * 4 + 1);
  w.svarint(base.length);
  refused(
    craft((m) => {
      m.ops = [{ op: "copy-range", offset: 0, length: target.length }];
      m.chunks = [];
    }, w.bytes()),
    "DELTA_OUT_OF_RANGE",
    /base range \[300000, /,
  );
});

test("unknown chunks: a wrong ids digest, a chunk index past the base's chunks, a table index past the table", () => {
  refused(
    craft((m) => {
      m.chunks[0]!.idsDigest = new Uint8Array(32).fill(7);
    }),
    "DELTA_UNKNOWN_CHUNK",
    /chunk table\[0\]: chunk ids with digest 0707/,
  );
  refused(
    craft((m) => {
      m.chunks[0]!.index = 100_000;
    }),
    "DELTA_UNKNOWN_CHUNK",
    /do not exist \(the base has \d+ chunks\)/,
  );
  refused(
    craft((m) => {
      firstOp(m, "copy-chunk").chunk = m.chunks.length;
    }),
    "DELTA_OUT_OF_RANGE",
    /COPY chunk #\d+ but the chunk table has/,
  );
});

test("oversize ADD and oversize output are refused from the header, before allocating", () => {
  const add = good.summary.addedBytes;
  refused(good.bin, "DELTA_TOO_LARGE", new RegExp(`${add} ADD bytes exceeds the ADD cap of ${add - 1}`), {
    maxAddBytes: add - 1,
  });
  const huge = craft((m) => {
    m.targetSize = 2 ** 40;
  });
  refused(huge, "DELTA_TOO_LARGE", /target_size: 1099511627776 bytes exceeds the output cap of 2147483648/);
});

test("wrong base (other content, other size) and wrong target digest are refused", () => {
  const other = Buffer.from(base);
  other[123] = other[123]! ^ 1;
  refused(good.bin, "DELTA_BASE_MISMATCH", /base_digest: base is sha256:/, { base: other });
  refused(good.bin, "DELTA_BASE_MISMATCH", /base_size: base is 299999 bytes, delta expects 300000/, {
    base: base.subarray(1),
  });
  refused(
    craft((m) => {
      m.targetSha256 = new Uint8Array(32);
    }),
    "DELTA_TARGET_MISMATCH",
    /target_digest: result is sha256:[0-9a-f]{64}, delta promises sha256:0{64}/,
  );
});

test("op stream: varint overflow, zero-length op, op count mismatch, leftover bytes", () => {
  const ops1 = [{ op: "add", length: 1 } as DeltaOp];
  const bad = (raw: number[], code: DeltaErrorCode, msg: RegExp, n = 1): void => {
    refused(
      craft((m) => {
        m.ops = n === 1 ? ops1 : Array.from({ length: n }, () => ops1[0]!);
        m.chunks = [];
      }, Uint8Array.from(raw)),
      code,
      msg,
    );
  };
  bad([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], "DELTA_MALFORMED", /longer than 8 bytes/);
  bad([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], "DELTA_MALFORMED", /exceeds 2\^53-1/);
  bad([0x02], "DELTA_MALFORMED", /zero length/);
  bad([0x80], "DELTA_MALFORMED", /varint truncated/);
  bad([0x06, 0x06], "DELTA_MALFORMED", /bytes after the last op/);
  bad([0x06], "DELTA_MALFORMED", /ends after 1 of 2 ops/, 2);
});

test("a good delta applied through applyDeltaFile writes exactly the target and no temporary file", () => {
  const dir = mkdtempSync(join(tmpdir(), "delta-ok-"));
  writeFileSync(join(dir, "base"), base);
  writeFileSync(join(dir, "delta.bin"), good.bin);
  const digest = applyDeltaFile(join(dir, "base"), join(dir, "delta.bin"), join(dir, "out"));
  assert.equal(digest, good.targetDigest);
  assert.ok(readFileSync(join(dir, "out")).equals(target));
  assert.deepEqual(readdirSync(dir).sort(), ["base", "delta.bin", "out"]);
  assert.throws(
    () => applyDeltaFile(join(dir, "nope"), join(dir, "delta.bin"), join(dir, "out2")),
    /DELTA_IO|cannot read/,
  );
  assert.equal(existsSync(join(dir, "out2")), false);
});
