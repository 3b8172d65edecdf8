/**
 * functions_changed on binaries built here by gcc and on the real libssl3 release pair: a stripped
 * side degrades to the exported functions (or to "not compared") instead of calling every function
 * removed; a real pair lists modified OpenSSL functions; junk with an ELF magic is noted, not fatal.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";

import { workDir } from "../artifacts/test-packages.ts";
import { functionsChanged } from "./functions.ts";
import { diffEntries, openDeltaInput } from "./inputs.ts";
import { debTree, LIBSSL_NEW, LIBSSL_OLD } from "./test-helpers.ts";

let dir: string;
before(() => {
  dir = workDir("functions");
});

function gcc(name: string, source: string, args: string[]): string {
  const c = join(dir, `${name}.c`);
  const out = join(dir, name);
  writeFileSync(c, source);
  execFileSync("gcc", ["-O1", "-o", out, c, ...args]);
  return out;
}

function strip(path: string): string {
  const out = `${path}.stripped`;
  copyFileSync(path, out);
  execFileSync("strip", [out]);
  return out;
}

const PROGRAM = `#include <stdio.h>
static int helper(int x) { return x * 3 + 1; }
int compute(int x) { return helper(x) + 2; }
int main(int c, char **v) { printf("%d\\n", compute(c)); return 0; }
`;

/** A library: two exported functions, one static helper; `k` changes one exported function. */
const library = (k: number): string => `
static int helper(int x) { return x * 7 + 1; }
int lib_stable(int x) { return helper(x) ^ 0x55; }
int lib_changing(int x) { return x * ${k} + helper(x); }
`;

async function compare(a: string, b: string) {
  const [base, target] = [await openDeltaInput(a), await openDeltaInput(b)];
  return functionsChanged(base, target, diffEntries(base.entries, target.entries));
}

describe("functions_changed", () => {
  it("stripped vs non-stripped executable: no function symbols on one side → not compared, no crash", async () => {
    const exe = gcc("prog", PROGRAM, []);
    const r = await compare(exe, strip(exe));
    assert.equal(r.summary.binaries, 1);
    const [b] = r.summary.per_binary;
    assert.equal(b?.compared, "none");
    assert.deepEqual(b?.symbols, { base: ".symtab", target: "none" });
    assert.match(b?.note ?? "", /target has no function symbols \(stripped\)/);
    assert.deepEqual([r.summary.added, r.summary.removed, r.summary.modified], [0, 0, 0]);
    assert.deepEqual(r.changed, []);
  });

  it("stripped vs non-stripped library: only exported (.dynsym) functions compared, the changed one found", async () => {
    const v1 = gcc("libv1.so", library(5), ["-shared", "-fPIC"]);
    const v2 = gcc("libv2.so", library(9), ["-shared", "-fPIC"]);
    const r = await compare(v1, strip(v2));
    const [b] = r.summary.per_binary;
    assert.equal(b?.compared, "exported");
    assert.deepEqual(b?.symbols, { base: ".symtab", target: ".dynsym" });
    assert.match(b?.note ?? "", /only exported \(\.dynsym\) functions compared/);
    // The static helper and the crt functions are not "removed"; lib_changing is modified.
    assert.deepEqual([r.summary.added, r.summary.removed, r.summary.modified], [0, 0, 1]);
    assert.deepEqual(r.summary.top_symbols, [
      { symbol: "lib_changing", change: "modified", path: "/libv2.so.stripped" },
    ]);
    assert.deepEqual(r.changed, [{ symbol: "lib_changing", change: "modified" }]);
    // Both unstripped: the full symbol tables, same answer for the exported function.
    const full = await compare(v1, v2);
    assert.equal(full.summary.per_binary[0]?.compared, "symbols");
    assert.ok(full.changed.some((c) => c.symbol === "lib_changing" && c.change === "modified"));
    assert.ok(!full.changed.some((c) => c.symbol === "lib_stable"), JSON.stringify(full.changed));
  });

  it("an ELF magic followed by junk is noted, not fatal", async () => {
    const a = join(dir, "junk-a");
    const b = join(dir, "junk-b");
    writeFileSync(a, Buffer.concat([Buffer.from("\x7fELF\x02\x01\x01"), Buffer.alloc(100, 1)]));
    writeFileSync(b, Buffer.concat([Buffer.from("\x7fELF\x02\x01\x01"), Buffer.alloc(100, 2)]));
    const r = await compare(a, b);
    const [p] = r.summary.per_binary;
    assert.equal(p?.compared, "none");
    assert.match(p?.note ?? "", /^not compared: .*e_phoff/);
    assert.deepEqual([r.summary.binaries, r.summary.modified], [1, 0]);
  });

  it("the real libssl3 3.0.20 → 3.0.22 pair: modified OpenSSL functions, in .deb members too", async () => {
    const rel = "usr/lib/x86_64-linux-gnu/libssl.so.3";
    const r = await compare(debTree("libssl3", LIBSSL_OLD) + rel, debTree("libssl3", LIBSSL_NEW) + rel);
    const [b] = r.summary.per_binary;
    assert.equal(b?.compared, "symbols");
    assert.ok(r.summary.modified > 5, String(r.summary.modified));
    assert.ok(
      r.summary.top_symbols.every((s) => s.change === "modified" && /@OPENSSL_3\.0\.0$/.test(s.symbol)),
    );
    const names = r.summary.top_symbols.map((s) => s.symbol);
    assert.deepEqual(names, [...names].sort(), "sorted");
    assert.equal(r.changed.length, r.summary.modified);

    const deb = await compare(
      join(debTree("libssl3", LIBSSL_OLD), "..", `libssl3_${LIBSSL_OLD}_amd64.deb`),
      join(debTree("libssl3", LIBSSL_NEW), "..", `libssl3_${LIBSSL_NEW}_amd64.deb`),
    );
    const paths = deb.summary.per_binary.map((p) => p.path);
    assert.ok(paths.includes("/usr/lib/x86_64-linux-gnu/libssl.so.3"), paths.join(" "));
    assert.ok(paths.includes("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"), paths.join(" "));
    assert.equal(
      deb.summary.per_binary.find((p) => p.path.endsWith("libssl.so.3"))?.modified,
      r.summary.modified,
    );
    assert.ok(deb.summary.modified > r.summary.modified);
  });
});
