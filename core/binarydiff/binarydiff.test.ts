import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { openArtifact } from "../artifacts/artifact.ts";
import { buildImage, dockerArchiveFiles, tarOfFiles } from "../artifacts/test-images.ts";
import { canonicalJson } from "../canonical-json.ts";
import { DEFAULT_SECTIONS } from "../funcproof/funcproof.ts";
import { binaryDiff, type BinaryDiffV1 } from "./binarydiff.ts";
import { classify } from "./verdict.ts";

const FIXTURES = new URL("../testdata/out/", import.meta.url).pathname;
const OPTS = { tool: "stella", toolVersion: "test", sections: DEFAULT_SECTIONS };

async function diff(a: string, b: string): Promise<BinaryDiffV1> {
  return binaryDiff(await openArtifact(a), await openArtifact(b), OPTS);
}

for (const arch of ["", ".aarch64-linux-gnu"]) {
  test(`one function changed, one inserted before it: exactly one modified, one added${arch}`, async () => {
    const d = await diff(`${FIXTURES}prog-v1${arch}`, `${FIXTURES}prog-v2${arch}`);
    assert.equal(d.findings.length, 1);
    const f = d.findings[0]!;
    assert.equal(f.changeType, "modified");
    assert.deepEqual(f.functionsChanged, {
      added: ["validate_input"],
      removed: [],
      modified: ["parse_header"],
    });
    // Everything after the inserted function moved: raw bytes differ, normalised ones do not.
    assert.ok(f.functionsRelocated >= 2, `relocated ${f.functionsRelocated}`);
    assert.equal(f.sectionDeltas.find((s) => s.section === ".text")?.status, "modified");
    assert.notEqual(f.base?.buildId, f.target?.buildId);
    assert.ok(["unknown", "patched"].includes(f.verdict));
    assert.ok(f.confidenceReasons.length >= 3, "confidence is explained");
  });
}

test("the same binary on both sides is vanilla with confidence 1", async () => {
  const d = await diff(`${FIXTURES}prog-v1`, `${FIXTURES}prog-v1`);
  assert.equal(d.findings[0]!.verdict, "vanilla");
  assert.equal(d.findings[0]!.confidence, 1);
  assert.equal(d.metadata.summary.unchanged, 1);
});

test("different architectures are incompatible", async () => {
  const d = await diff(`${FIXTURES}prog-v1`, `${FIXTURES}prog-v1.s390x-linux-gnu`);
  assert.equal(d.findings[0]!.verdict, "incompatible");
});

test("directory trees pair binaries by path: modified, added, removed, unchanged", async () => {
  const root = mkdtempSync(join(tmpdir(), "bindiff-"));
  const [a, b] = [join(root, "a"), join(root, "b")];
  for (const d of [a, b]) mkdirSync(join(d, "usr/bin"), { recursive: true });
  copyFileSync(`${FIXTURES}prog-v1`, join(a, "usr/bin/app"));
  copyFileSync(`${FIXTURES}prog-v2`, join(b, "usr/bin/app"));
  copyFileSync("/usr/bin/true", join(a, "usr/bin/true"));
  copyFileSync("/usr/bin/true", join(b, "usr/bin/true"));
  copyFileSync("/usr/bin/false", join(a, "usr/bin/false"));
  copyFileSync(`${FIXTURES}prog-v1.stripped`, join(b, "usr/bin/helper"));
  const d = await diff(a, b);
  assert.deepEqual(
    d.findings.map((f) => [f.path, f.changeType]),
    [
      ["/usr/bin/app", "modified"],
      ["/usr/bin/false", "removed"],
      ["/usr/bin/helper", "added"],
      ["/usr/bin/true", "unchanged"],
    ],
  );
  assert.deepEqual(d.metadata.summary, { binaries: 4, added: 1, removed: 1, modified: 1, unchanged: 1 });
  assert.equal(d.subjects[0]!.digest.sha256.length, 64);
  // Deterministic: a second run gives the same bytes.
  assert.equal(canonicalJson(d), canonicalJson(await diff(a, b)));
});

test("verdicts follow the seed's thresholds and explain themselves", () => {
  const base = {
    identicalFile: false,
    changedSections: [".text"],
    functionLevel: true,
    functionsTotal: 1000,
    added: 0,
    removed: 0,
    exportsChanged: 0,
  };
  const backport = classify({ ...base, modified: 2 });
  assert.equal(backport.verdict, "patched");
  assert.ok(backport.confidence >= 0.9);
  const rewrite = classify({ ...base, modified: 300, exportsChanged: 12 });
  assert.equal(rewrite.verdict, "unknown");
  assert.ok(rewrite.confidence < 0.9);
  const dataOnly = classify({ ...base, changedSections: [".data"], modified: 0 });
  assert.equal(dataOnly.verdict, "vanilla");
  assert.equal(classify({ ...base, modified: 1, incompatible: "x" }).verdict, "incompatible");
});

test("image tarballs: layers applied in order, whiteouts honoured, binaries paired by path", async () => {
  const root = mkdtempSync(join(tmpdir(), "bindiff-img-"));
  const file = (p: string): Buffer => readFileSync(p);
  const base = await buildImage([
    {
      compression: "gzip",
      items: [
        { path: "usr/bin/app", data: file(`${FIXTURES}prog-v1`) },
        { path: "usr/bin/true", data: file("/usr/bin/true") },
        { path: "usr/bin/false", data: file("/usr/bin/false") },
      ],
    },
  ]);
  // v2: a second layer replaces the app and deletes `false` with a whiteout.
  const target = await buildImage([
    {
      compression: "gzip",
      items: [
        { path: "usr/bin/app", data: file(`${FIXTURES}prog-v1`) },
        { path: "usr/bin/true", data: file("/usr/bin/true") },
        { path: "usr/bin/false", data: file("/usr/bin/false") },
      ],
    },
    {
      compression: "zstd",
      items: [
        { path: "usr/bin/app", data: file(`${FIXTURES}prog-v2`) },
        { path: "usr/bin/.wh.false", data: new Uint8Array(0) },
      ],
    },
  ]);
  const tarOf = async (img: typeof base, name: string): Promise<string> => {
    const p = join(root, name);
    writeFileSync(p, await tarOfFiles(dockerArchiveFiles(img)));
    return p;
  };
  const d = await diff(await tarOf(base, "v1.tar"), await tarOf(target, "v2.tar"));
  assert.deepEqual(
    d.findings.map((f) => [f.path, f.changeType]),
    [
      ["/usr/bin/app", "modified"],
      ["/usr/bin/false", "removed"],
      ["/usr/bin/true", "unchanged"],
    ],
  );
  assert.deepEqual(d.findings[0]!.functionsChanged, {
    added: ["validate_input"],
    removed: [],
    modified: ["parse_header"],
  });
  assert.equal(d.inputs.base.kind, "docker-archive");
  assert.deepEqual(d.subjects[0]!.platform, { os: "linux", architecture: "amd64" });
});
