// Naming stripped frames end to end with real binaries: a FuncProof of the unstripped workload, signed as
// DSSE, names the frames the agent would send for the stripped copy (BuildID + file offset, .text section).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { buildWorkload, loadSegments, nmFunctions, readelfBuildId } from "../../agent/testing/workload.ts";
import { attest } from "../../core/dsse/attest.ts";
import type { Envelope } from "../../core/dsse/envelope.ts";
import { generateKeyPair, loadPrivateKey } from "../../core/dsse/keys.ts";
import { keySigner } from "../../core/dsse/sign.ts";
import { isStellaError } from "../../core/errors.ts";
import { buildFuncProof, FUNCPROOF_PREDICATE_TYPE, type FuncProof } from "../../core/funcproof/funcproof.ts";
import { FileByteSource } from "../../core/io/byte-source.ts";
import type { StackBatch__Output } from "../../proto/evidence.ts";
import { createHotSymbolIndex, unnamedFrame } from "./hot-symbols.ts";
import { FuncProofNamer } from "./namer.ts";

interface Sec {
  name: string;
  fileOffset: number;
  size: number;
  address: number;
}

/** readelf -SW's sections: name, address, file offset, size. */
function readelfSections(file: string): Sec[] {
  const out: Sec[] = [];
  for (const line of execFileSync("readelf", ["-SW", file], { encoding: "utf8" }).split("\n")) {
    const m = /\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s/.exec(line);
    if (!m?.[1] || !m[2] || !m[3] || !m[4]) continue;
    out.push({
      name: m[1],
      address: parseInt(m[2], 16),
      fileOffset: parseInt(m[3], 16),
      size: parseInt(m[4], 16),
    });
  }
  return out;
}

async function sign(proof: FuncProof): Promise<Envelope> {
  const key = generateKeyPair("ecdsa-p256");
  return attest({
    subjects: [{ name: proof.file.name, digest: { sha256: proof.file.sha256 } }],
    predicateType: FUNCPROOF_PREDICATE_TYPE,
    predicate: proof as unknown as Record<string, unknown>,
    signers: [keySigner(loadPrivateKey(key.privatePem, "test.key"))],
  });
}

const T = 1_800_000_000_000; // a minute boundary

describe("FuncProofNamer with real binaries", () => {
  let dir = "";
  let stripped = "";
  let buildId = "";
  let envelope: Envelope;
  let text: Sec;
  /** name → file offset of an address inside the function (per nm of the unstripped exe + PT_LOADs). */
  const offsets = new Map<string, number>();
  const ranges = new Map<string, { start: number; end: number }>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "stella-namer-"));
    const w = buildWorkload(dir);
    stripped = w.stripped;
    buildId = readelfBuildId(stripped);
    assert.equal(readelfBuildId(w.exe), buildId, "strip keeps the build id");
    const src = new FileByteSource(w.exe);
    try {
      envelope = await sign(buildFuncProof(src, { name: "workload", tool: "test" }));
    } finally {
      src.close();
    }
    const t = readelfSections(stripped).find((s) => s.name === ".text");
    assert.ok(t, "stripped binary has .text");
    text = t;
    assert.ok(
      !readelfSections(stripped).some((s) => s.name === ".symtab"),
      "the stripped copy has no symtab",
    );
    const segs = loadSegments(stripped);
    for (const [name, r] of nmFunctions(w.exe)) {
      ranges.set(name, r);
      const at = r.start + Math.min(4, r.end - r.start - 1);
      const seg = segs.find((s) => at >= s.vaddr && at < s.vaddr + s.filesz);
      assert.ok(seg, `${name} in a PT_LOAD`);
      offsets.set(name, at - seg.vaddr + seg.offset);
    }
    for (const f of ["stella_hot", "stella_mid", "main"]) assert.ok(offsets.has(f), `nm shows ${f}`);
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function batch(count: number, withBinary = true): StackBatch__Output {
    const frame = (fn: string) => ({
      kind: "KIND_NATIVE" as const,
      buildId,
      fileOffset: offsets.get(fn)!,
      unresolvedReason: "",
    });
    return {
      node: "node-a",
      agentId: "node-a/0123456789ab",
      seq: 1,
      window: { startUnixMs: T, endUnixMs: T + 10_000 },
      hz: 99,
      droppedSamples: 0,
      frames: [],
      samples: [
        {
          container: "c".repeat(64),
          pod: "web-1",
          namespace: "shop",
          imageDigest: "sha256:" + "a".repeat(64),
          containerName: "web",
          frames: [frame("stella_hot"), frame("stella_mid"), frame("main")],
          count,
          frameIds: [],
        },
      ],
      binaries: withBinary ? [{ buildId, path: "/app/workload", sections: [text] }] : [],
    };
  }
  const window = { sinceMs: T, untilMs: T + 60_000 };

  test("the signed FuncProof of the unstripped exe names frames of the stripped one", () => {
    const namer = new FuncProofNamer();
    assert.equal(namer.addFromEnvelope(envelope), buildId);
    const hot = ranges.get("stella_hot")!;
    assert.deepEqual(namer.nameAt(buildId, hot.start + 3), { symbol: "stella_hot", offset: 3 });
    assert.equal(namer.nameAt(buildId, hot.end)?.symbol === "stella_hot", false, "end is exclusive");
    assert.equal(namer.nameAt("00".repeat(20), hot.start), undefined, "other BuildID");

    const index = createHotSymbolIndex({ namer, now: () => T });
    index.fold(batch(7));
    const obs = index.query({ name: "stella_hot", ...window });
    assert.equal(obs.samples, 7);
    assert.deepEqual(obs.buildIds, [buildId]);
    assert.deepEqual(obs.pods, ["shop/web-1"]);
    assert.deepEqual(obs.nodes, ["node-a"]);
    assert.deepEqual(obs.topStacks, [{ stack: "stella_hot;stella_mid;main", count: 7 }]);
    assert.equal(index.query({ name: "main", ...window }).samples, 7);
    assert.equal(index.query({ name: "stella_mid", ...window, buildIds: [buildId] }).samples, 7);
    assert.equal(index.stats.namedFrames, 3);
    assert.equal(index.stats.unnamedFrames, 0);
  });

  test("without the namer the frames stay [buildid+0xoff] and stella_hot is not found", () => {
    const index = createHotSymbolIndex({ now: () => T });
    index.fold(batch(7));
    assert.equal(index.query({ name: "stella_hot", ...window }).samples, 0);
    const key = unnamedFrame(buildId, offsets.get("stella_hot")!);
    assert.match(key, /^\[[0-9a-f]+\+0x[0-9a-f]+\]$/);
    const obs = index.query({ name: key, ...window });
    assert.equal(obs.samples, 7, "kept under its [buildid+0xoff] key");
    assert.equal(obs.topStacks[0]?.stack.split(";").length, 3);
    assert.equal(index.stats.unnamedFrames, 3);
  });

  test("without the binary's sections the namer cannot be asked: frames stay unnamed", () => {
    const namer = new FuncProofNamer();
    namer.addFromEnvelope(JSON.stringify(envelope));
    const index = createHotSymbolIndex({ namer, now: () => T });
    index.fold(batch(2, false));
    assert.equal(index.query({ name: "stella_hot", ...window }).samples, 0);
    // The layout arrives later (after a dropped batch the agent describes the binary again).
    index.fold(batch(3, true));
    assert.equal(index.query({ name: "stella_hot", ...window }).samples, 3);
  });

  test("envelopes of another predicate type and malformed tables are refused", async () => {
    const namer = new FuncProofNamer();
    const key = generateKeyPair("ed25519");
    const other = await attest({
      subjects: [{ name: "x", digest: { sha256: "0".repeat(64) } }],
      predicateType: "stellaops.binarydiff.v1",
      predicate: { buildId, functions: [] },
      signers: [keySigner(loadPrivateKey(key.privatePem, "k"))],
    });
    assert.throws(
      () => namer.addFromEnvelope(other),
      (e) => isStellaError(e, "NAMER_PREDICATE_TYPE"),
    );
    assert.throws(
      () => namer.addFunctions(buildId, [{ sym: "f", start: "zz", end: "0x10" }]),
      (e) => isStellaError(e, "NAMER_MALFORMED"),
    );
    assert.throws(
      () => namer.addFuncProof({ functions: [] }),
      (e) => isStellaError(e, "NAMER_NO_BUILD_ID"),
    );
    assert.equal(namer.size, 0);
  });
});

describe("FuncProofNamer tables", () => {
  const id = "ab".repeat(20);

  test("hex strings and numbers, unsorted input, aliases and nested ranges", () => {
    const namer = new FuncProofNamer();
    namer.addFunctions(id, [
      { sym: "inner", start: 0x1100, end: 0x1110 },
      { sym: "outer", start: "0x1000", end: "0x1200" },
      { sym: "alias_short", start: "0x2000", end: "0x2004" },
      { sym: "alias_wide", start: "0x2000", end: "0x2010" },
      { sym: "empty", start: "0x3000", end: "0x3000" },
    ]);
    assert.deepEqual(namer.nameAt(id, 0x1000), { symbol: "outer", offset: 0 });
    assert.deepEqual(namer.nameAt(id, 0x1105), { symbol: "inner", offset: 5 });
    assert.deepEqual(
      namer.nameAt(id, 0x1150),
      { symbol: "outer", offset: 0x150 },
      "walks back to the enclosing",
    );
    assert.deepEqual(namer.nameAt(id, 0x2008), { symbol: "alias_wide", offset: 8 });
    assert.equal(namer.nameAt(id, 0x3000), undefined);
    assert.equal(namer.nameAt(id, 0xfff), undefined);
    assert.equal(namer.nameAt(id, 0x1200), undefined);
  });

  test("bounded: the oldest table is dropped beyond maxBinaries", () => {
    const namer = new FuncProofNamer({ maxBinaries: 2 });
    for (const b of ["01", "02", "03"]) namer.addFunctions(b.repeat(20), [{ sym: "f", start: 0, end: 16 }]);
    assert.equal(namer.size, 2);
    assert.equal(namer.has("01".repeat(20)), false);
    assert.equal(namer.nameAt("03".repeat(20), 1)?.symbol, "f");
    assert.ok(namer.approxBytes > 0);
  });
});
