import assert from "node:assert/strict";
import { test } from "node:test";

import { applyDelta } from "./apply.ts";
import { createDelta } from "./create.ts";
import { parseDelta } from "./format.ts";
import { elfLayout, isX86Elf, OffsetMap } from "./rel32.ts";
import { libsslPair, prngBytes } from "./test-helpers.ts";

test("OffsetMap: inside a segment, hidden behind a later short one, between segments, before all", () => {
  const m = new OffsetMap([
    [1000, 5000, 100], // shift +4000
    [0, 100, 10_000], // long, shift +100, covers 1000 too but starts earlier
    [3000, 2000, 10], // shift -1000
  ]);
  assert.equal(m.map(1050), 5050, "inside [1000, 1100)");
  assert.equal(m.map(2000), 2100, "inside the long segment although [1000,1100) starts later");
  assert.equal(m.map(3005), 2005);
  assert.equal(m.map(10_500), 10_500 - 1000, "after everything: the last segment's shift");
  assert.equal(new OffsetMap([[500, 600, 10]]).map(0), 100, "before everything: the first segment's shift");
  assert.equal(new OffsetMap([]).map(5), -1);
  // Between two segments: the nearer one wins.
  const g = new OffsetMap([
    [0, 0, 100],
    [1000, 1500, 100],
  ]);
  assert.equal(g.map(200), 200);
  assert.equal(g.map(900), 1400);
});

test("elfLayout: the libcrypto base has one executable segment, .eh_frame_hdr and thousands of FDEs", () => {
  const [a] = libsslPair("libcrypto.so.3");
  assert.ok(isX86Elf(a));
  const l = elfLayout(a);
  assert.deepEqual(l.exec, [[0xc5000, 0xc5000 + 0x27ce69]]);
  assert.equal(l.ehHdr?.[0], 0x39ba18);
  assert.ok(l.fdePcBegin.length > 5000, `${l.fdePcBegin.length} FDEs`);
  assert.deepEqual(
    l.fdePcBegin,
    [...l.fdePcBegin].sort((x, y) => x - y),
  );
});

test("hostile ELF headers (program headers past the end, huge sizes) still give exact round trips", () => {
  const a = prngBytes(200_000, 77);
  a.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  a[18] = 0x3e;
  a[19] = 0;
  const dv = new DataView(a.buffer);
  for (const [phoff, num] of [
    [2 ** 40, 3],
    [64, 0xffff],
    [64, 3],
  ] as const) {
    dv.setBigUint64(32, BigInt(phoff), true);
    dv.setUint16(54, 56, true);
    dv.setUint16(56, num, true);
    const b = Buffer.from(a);
    for (let i = 1000; i < 150_000; i += 997) b[i] = b[i]! ^ 0x55;
    const r = createDelta(a, b);
    assert.equal(parseDelta(r.bin, "hostile.bin").predictor, 1);
    assert.ok(Buffer.from(applyDelta(a, r.bin)).equals(b));
  }
});
