import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Blake3 } from "../hash/digest.ts";
import { BufferByteSource } from "../io/byte-source.ts";
import { functionMiddle } from "../testing/elf-oracle.ts";
import { buildFuncProof } from "./funcproof.ts";
import { describeMismatch, replayFuncProof } from "./replay.ts";

const LIBZ = "/usr/lib/x86_64-linux-gnu/libz.so.1";

function proofOf(bytes: Buffer, blake3?: Blake3): ReturnType<typeof buildFuncProof> {
  return buildFuncProof(new BufferByteSource(bytes, "libz"), {
    name: "/usr/lib/libz.so.1",
    tool: "test",
    ...(blake3 ? { blake3 } : {}),
  });
}

test("an unchanged binary replays clean: every section and function hash recomputed", () => {
  const bytes = readFileSync(LIBZ);
  const proof = proofOf(bytes);
  const r = replayFuncProof(proof, new BufferByteSource(bytes, "libz"));
  assert.deepEqual(r.mismatches, []);
  assert.equal(r.ok, true);
  assert.equal(r.checked.functions, proof.functions.length);
  assert.equal(r.checked.sections, Object.keys(proof.sections).length);
  assert.ok(r.checked.functions > 50);
});

test("one byte changed inside deflate names the file, .text and deflate, and nothing else", async () => {
  const bytes = readFileSync(LIBZ);
  const proof = proofOf(bytes);
  // nm and readelf are the oracles for where deflate lives.
  const { start, offset: at } = await functionMiddle(LIBZ, "deflate");
  const changed = Buffer.from(bytes);
  changed[at] = (changed[at] ?? 0) ^ 0xff;

  const r = replayFuncProof(proof, new BufferByteSource(changed, "libz"));
  assert.equal(r.ok, false);
  const kinds = r.mismatches.map((m) => `${m.kind}:${m.name}:${m.field ?? ""}`).sort();
  const expected = [
    `file:/usr/lib/libz.so.1:sha256`,
    `section:.text:sha256`,
    `function:deflate@${start}:sha256`,
  ];
  // The normalised hash changes too unless the byte sat in a masked displacement.
  for (const k of expected) assert.ok(kinds.includes(k), `${k} in ${kinds.join(", ")}`);
  assert.ok(
    kinds.every((k) => expected.includes(k) || k === `function:deflate@${start}:normSha256`),
    kinds.join(", "),
  );
  const fn = r.mismatches.find((m) => m.kind === "function" && m.field === "sha256");
  assert.ok(fn);
  assert.match(describeMismatch(fn), /^function deflate@0x[0-9a-f]+ sha256 differs \(expected [0-9a-f]{16}…/);
});

test("BLAKE3 hashes are replayed too, and a proof with them needs a hasher", async () => {
  const blake3 = await Blake3.create();
  const bytes = readFileSync(LIBZ);
  const proof = proofOf(bytes, blake3);
  assert.ok(proof.sections[".text"]?.blake3);
  assert.throws(() => replayFuncProof(proof, new BufferByteSource(bytes, "libz")), /BLAKE3/);
  const forged = structuredClone(proof);
  const text = forged.sections[".text"];
  assert.ok(text?.blake3);
  text.blake3 = "0".repeat(64);
  const r = replayFuncProof(forged, new BufferByteSource(bytes, "libz"), { blake3 });
  assert.deepEqual(
    r.mismatches.map((m) => [m.kind, m.name, m.field]),
    [["section", ".text", "blake3"]],
  );
});

test("a truncated binary is reported unreadable, not thrown", () => {
  const bytes = readFileSync(LIBZ);
  const proof = proofOf(bytes);
  const r = replayFuncProof(proof, new BufferByteSource(bytes.subarray(0, 100), "libz"));
  assert.equal(r.ok, false);
  assert.equal(r.mismatches[0]?.kind, "unreadable");
  assert.match(describeMismatch(r.mismatches[0]), /cannot be read as ELF/);
});

test("functions removed or added are named", () => {
  const bytes = readFileSync(LIBZ);
  const proof = proofOf(bytes);
  const edited = structuredClone(proof);
  const gone = edited.functions.shift();
  assert.ok(gone);
  edited.functions.push({ sym: "injected", start: "0x1", end: "0x2", sha256: "0".repeat(64) });
  const r = replayFuncProof(edited, new BufferByteSource(bytes, "libz"));
  assert.deepEqual(
    r.mismatches.map((m) => `${m.kind}:${m.name}`).sort(),
    [`function-extra:${gone.sym}@${gone.start}`, "function-missing:injected@0x1"].sort(),
  );
});
