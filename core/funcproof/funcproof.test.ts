import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

import { canonicalJson } from "../canonical-json.ts";
import { Blake3 } from "../hash/digest.ts";
import { FileByteSource } from "../io/byte-source.ts";
import { run } from "../testing/run.ts";
import { buildFuncProof, type FuncProof } from "./funcproof.ts";

const FIXTURES = new URL("../testdata/out/", import.meta.url).pathname;
const LIBCRYPTO = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3";

function proofOf(path: string, extra: Partial<Parameters<typeof buildFuncProof>[1]> = {}): FuncProof {
  const src = new FileByteSource(path);
  try {
    return buildFuncProof(src, { name: path.split("/").pop()!, tool: "test", ...extra });
  } finally {
    src.close();
  }
}

interface ReadelfSection {
  name: string;
  addr: bigint;
  offset: number;
  size: number;
}

async function readelfSections(path: string): Promise<Map<string, ReadelfSection>> {
  const out = await run("readelf", ["-S", "-W", path]);
  const map = new Map<string, ReadelfSection>();
  const re = /^\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s/;
  for (const line of out.stdout.split("\n")) {
    const m = re.exec(line);
    if (m)
      map.set(m[1]!, {
        name: m[1]!,
        addr: BigInt(`0x${m[2]!}`),
        offset: parseInt(m[3]!, 16),
        size: parseInt(m[4]!, 16),
      });
  }
  return map;
}

/** FUNC/IFUNC symbols from readelf -s (or --dyn-syms): "value size name". */
async function readelfFunctions(
  path: string,
  dyn: boolean,
): Promise<{ value: bigint; size: number; name: string }[]> {
  const out = await run("readelf", [dyn ? "--dyn-syms" : "--syms", "-W", path]);
  const res = [];
  for (const line of out.stdout.split("\n")) {
    const f = line.trim().split(/\s+/);
    // Num: Value Size Type Bind Vis Ndx Name
    if (f.length < 8 || !/^(FUNC|IFUNC)$/.test(f[3]!) || f[6] === "UND") continue;
    res.push({ value: BigInt(`0x${f[1]!}`), size: Number(f[2]), name: f[7]!.replace(/@.*$/, "") });
  }
  return res;
}

test("section hashes equal OpenSSL's over the bytes readelf locates", async () => {
  const proof = proofOf(LIBCRYPTO);
  const secs = await readelfSections(LIBCRYPTO);
  assert.deepEqual(Object.keys(proof.sections).sort(), [".data", ".dynsym", ".rodata", ".text"]);
  for (const [name, h] of Object.entries(proof.sections)) {
    const s = secs.get(name)!;
    assert.equal(h.offset, s.offset, name);
    assert.equal(h.size, s.size, name);
    const dgst = await run("sh", [
      "-c",
      `tail -c +${s.offset + 1} '${LIBCRYPTO}' | head -c ${s.size} | openssl dgst -sha256 -r`,
    ]);
    assert.equal(h.sha256, dgst.stdout.split(" ")[0], `${name} sha256`);
  }
  const sum = await run("sha256sum", [LIBCRYPTO]);
  assert.equal(proof.file.sha256, sum.stdout.split(" ")[0]);
  assert.equal(proof.file.size, readFileSync(LIBCRYPTO).length);
});

test("functions of a stripped library come from .dynsym and agree with readelf", async () => {
  const proof = proofOf(LIBCRYPTO);
  assert.equal(proof.meta.functionSource, ".dynsym");
  assert.ok(proof.functions.length > 5000, `${proof.functions.length} functions`);
  const theirs = await readelfFunctions(LIBCRYPTO, true);
  const key = (n: string, v: bigint): string => `${n}@${v.toString(16)}`;
  const ours = new Set(proof.functions.map((f) => key(f.sym, BigInt(f.start))));
  assert.deepEqual(new Set(theirs.map((f) => key(f.name, f.value))), ours);
  // Sized symbols end at start + size.
  const bySym = new Map(proof.functions.map((f) => [key(f.sym, BigInt(f.start)), f]));
  for (const t of theirs.filter((x) => x.size > 0).slice(0, 500)) {
    assert.equal(BigInt(bySym.get(key(t.name, t.value))!.end), t.value + BigInt(t.size), t.name);
  }
  // Sorted by start address.
  for (let i = 1; i < proof.functions.length; i++) {
    assert.ok(BigInt(proof.functions[i - 1]!.start) <= BigInt(proof.functions[i]!.start));
  }
});

test("function hashes match an independent SHA-256 over bytes located from readelf", async () => {
  const path = `${FIXTURES}prog-v1`;
  const proof = proofOf(path);
  assert.equal(proof.meta.functionSource, ".symtab");
  const text = (await readelfSections(path)).get(".text")!;
  const theirs = await readelfFunctions(path, false);
  const file = readFileSync(path);
  let checked = 0;
  for (const t of theirs.filter(
    (x) => x.size > 0 && x.value >= text.addr && x.value < text.addr + BigInt(text.size),
  )) {
    const off = text.offset + Number(t.value - text.addr);
    const expect = bytesToHex(nobleSha256(file.subarray(off, off + t.size)));
    const ours = proof.functions.find((f) => f.sym === t.name && BigInt(f.start) === t.value);
    assert.equal(ours?.sha256, expect, t.name);
    checked++;
  }
  assert.ok(checked >= 5, `checked ${checked} functions`);
  // Size-0 symbols (e.g. _start in crt1 has a size; _init/_fini in .init/.fini) never overlap the next.
  for (let i = 1; i < proof.functions.length; i++) {
    const a = proof.functions[i - 1]!;
    const b = proof.functions[i]!;
    if (a.start !== b.start)
      assert.ok(BigInt(a.end) <= BigInt(b.start) || BigInt(a.end) > BigInt(b.start), "bounded");
  }
});

test("BLAKE3 agrees with @noble/hashes", async () => {
  const b3 = await Blake3.create();
  const path = `${FIXTURES}prog-v1`;
  const proof = proofOf(path, { blake3: b3 });
  const file = readFileSync(path);
  assert.equal(proof.file.blake3, bytesToHex(nobleBlake3(file)));
  const text = proof.sections[".text"]!;
  assert.equal(text.blake3, bytesToHex(nobleBlake3(file.subarray(text.offset, text.offset + text.size))));
});

test("same input → byte-identical canonical JSON, wherever the file lives", () => {
  const dir = mkdtempSync(join(tmpdir(), "funcproof-"));
  copyFileSync(`${FIXTURES}prog-v1`, join(dir, "prog-v1"));
  const a = canonicalJson(proofOf(`${FIXTURES}prog-v1`));
  const b = canonicalJson(proofOf(join(dir, "prog-v1")));
  assert.equal(a, b);
  assert.equal(a, canonicalJson(JSON.parse(a)));
});

test("normalised hashes ignore code that moved; raw hashes do not", () => {
  for (const arch of ["", ".aarch64-linux-gnu"]) {
    const v1 = proofOf(`${FIXTURES}prog-v1${arch}`);
    const v2 = proofOf(`${FIXTURES}prog-v2${arch}`);
    const f1 = v1.functions.find((f) => f.sym === "checksum")!;
    const f2 = v2.functions.find((f) => f.sym === "checksum")!;
    assert.notEqual(f1.start, f2.start, `${arch}: checksum moved`);
    assert.notEqual(
      f1.sha256,
      f2.sha256,
      `${arch}: its raw bytes differ (RIP/PC-relative access to weights)`,
    );
    assert.equal(f1.normSha256, f2.normSha256, `${arch}: normalised bytes are equal`);
    const p1 = v1.functions.find((f) => f.sym === "parse_header")!;
    const p2 = v2.functions.find((f) => f.sym === "parse_header")!;
    assert.notEqual(p1.normSha256, p2.normSha256, `${arch}: the changed function differs`);
  }
});

test("sections over the limit are recorded as skipped, not hashed", () => {
  const proof = proofOf(`${FIXTURES}prog-v1`, { maxSectionBytes: 64 });
  assert.match(proof.sections[".text"]!.skipped ?? "", /exceeds the section limit of 64 bytes/);
  assert.equal(proof.sections[".text"]!.sha256, undefined);
});
