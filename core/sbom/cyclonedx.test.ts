import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import type { DeltaManifest } from "../delta/manifest.ts";
import { buildFuncProof, type FuncProof } from "../funcproof/funcproof.ts";
import { FileByteSource } from "../io/byte-source.ts";
import { deltaSbom, elfSbom, funcProofDigest, type ElfFileInput } from "./cyclonedx.ts";
import { validateCycloneDx16 } from "./validate.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TESTDATA = join(ROOT, "core/testdata/out");
const ELF_FILES = [
  "/usr/bin/ls",
  "/usr/lib/x86_64-linux-gnu/libz.so.1",
  // Not stripped: has a .symtab (a non-ALLOC section).
  join(TESTDATA, "prog-v1"),
].filter((f) => existsSync(f));
const IMAGE = { name: "registry.example/app:1.0", digest: `sha256:${"a".repeat(64)}` };
const CREATED = "2026-01-02T03:04:05.000Z";

interface CdxProperty {
  name: string;
  value: string;
}
interface CdxComponent {
  type: string;
  name: string;
  "bom-ref": string;
  version?: string;
  purl?: string;
  hashes?: { alg: string; content: string }[];
  properties?: CdxProperty[];
  externalReferences?: { url: string; type: string; hashes?: { alg: string; content: string }[] }[];
}
interface CdxBom {
  specVersion: string;
  serialNumber: string;
  metadata: { timestamp?: string; component: CdxComponent; properties?: CdxProperty[] };
  components: CdxComponent[];
  dependencies: { ref: string; dependsOn?: string[] }[];
}

function funcProofOf(path: string): FuncProof {
  const src = new FileByteSource(path);
  try {
    return buildFuncProof(src, { name: path, tool: "stella-test" });
  } finally {
    src.close();
  }
}

function sha256File(path: string): string {
  // `openssl dgst -sha256 FILE` prints "SHA2-256(FILE)= <hex>" (or "SHA256(...)= ").
  const out = execFileSync("openssl", ["dgst", "-sha256", path], { encoding: "utf8" });
  const hex = /= ([0-9a-f]{64})\s*$/.exec(out)?.[1];
  assert.ok(hex, `openssl output: ${out}`);
  return hex;
}

/** Offset, size and flags of a section from `readelf -SW`. */
function readelfSection(path: string, name: string): { offset: number; size: number; flags: string } {
  const out = execFileSync("readelf", ["-SW", path], { encoding: "utf8" });
  for (const line of out.split("\n")) {
    const m = /\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([A-Za-z]*)/.exec(line);
    if (m?.[1] === name)
      return { offset: parseInt(m[2] ?? "", 16), size: parseInt(m[3] ?? "", 16), flags: m[4] ?? "" };
  }
  throw new Error(`${path}: no section ${name} in readelf output`);
}

function prop(c: { properties?: CdxProperty[] }, name: string): string | undefined {
  return c.properties?.find((p) => p.name === name)?.value;
}

describe("elfSbom (CycloneDX 1.6)", () => {
  let tmp: string;
  let inputs: ElfFileInput[];

  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "sbom-test-"));
    assert.ok(ELF_FILES.length >= 2, `need at least two ELF files, found ${ELF_FILES.join(", ")}`);
    inputs = ELF_FILES.map((path, i) => {
      const fp = funcProofOf(path);
      return {
        path,
        sha256: fp.file.sha256,
        size: fp.file.size,
        funcproof: fp,
        ...(i === 0
          ? {}
          : {
              funcproofRef: {
                digest: `sha256:${String(i).repeat(64)}`,
                mediaType: "application/vnd.oci.image.manifest.v1+json",
                registryRef: `oci://registry.example/app@sha256:${String(i).repeat(64)}`,
              },
            }),
      };
    });
  });
  after(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  it("is valid against the CycloneDX 1.6 schema; a broken document is not", async () => {
    const json = elfSbom({ image: IMAGE, files: inputs, created: CREATED });
    const ok = await validateCycloneDx16(json);
    assert.deepEqual(ok.errors, []);
    assert.equal(ok.valid, true);

    const bom = JSON.parse(json) as CdxBom;
    assert.equal(bom.specVersion, "1.6");
    assert.match(
      bom.serialNumber,
      /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    assert.equal(bom.metadata.timestamp, CREATED);
    assert.equal(bom.metadata.component.type, "container");
    assert.deepEqual(bom.metadata.component.hashes, [{ alg: "SHA-256", content: "a".repeat(64) }]);

    const broken = JSON.parse(json) as CdxBom;
    const first = broken.components[0];
    assert.ok(first);
    first.type = "elf-binary";
    const bad = await validateCycloneDx16(JSON.stringify(broken));
    assert.equal(bad.valid, false);
    assert.ok(
      bad.errors.some((e) => e.includes("/components/0/type")),
      bad.errors.join("\n"),
    );

    const noFormat = JSON.parse(json) as Record<string, unknown>;
    delete noFormat["bomFormat"];
    assert.equal((await validateCycloneDx16(JSON.stringify(noFormat))).valid, false);
  });

  it("records each file's hash and every hashed section, matching objcopy + openssl", () => {
    const bom = JSON.parse(elfSbom({ image: IMAGE, files: inputs })) as CdxBom;
    assert.equal(bom.components.length, inputs.length);
    let checked = 0;
    for (const input of inputs) {
      const c = bom.components.find((x) => x.name === input.path);
      assert.ok(c, input.path);
      assert.equal(c.type, "file");
      assert.equal(c["bom-ref"], `file:${input.path}`);
      assert.deepEqual(c.hashes, [{ alg: "SHA-256", content: sha256File(input.path) }]);
      assert.equal(prop(c, "evidence:buildId"), input.funcproof.buildId);
      assert.equal(prop(c, "evidence:funcproof:digest"), funcProofDigest(input.funcproof));
      const hashed = Object.entries(input.funcproof.sections).filter(([, s]) => s.sha256 !== undefined);
      assert.ok(
        hashed.some(([n]) => n === ".text"),
        `${input.path} has a hashed .text`,
      );
      const sectionProps = (c.properties ?? []).filter((p) => /^evidence:section:.*:sha256$/.test(p.name));
      assert.equal(sectionProps.length, hashed.length);
      for (const [name] of hashed) {
        const out = join(tmp, `${checked}${name}`);
        const hdr = readelfSection(input.path, name);
        if (hdr.flags.includes("A")) {
          // Loaded sections: objcopy's raw dump.
          execFileSync("objcopy", [`--dump-section`, `${name}=${out}`, input.path, join(tmp, "discard")]);
        } else {
          // objcopy rewrites .symtab, so non-ALLOC sections come out with readelf offsets + dd.
          execFileSync("dd", [
            `if=${input.path}`,
            `of=${out}`,
            "bs=65536",
            "iflag=skip_bytes,count_bytes",
            `skip=${hdr.offset}`,
            `count=${hdr.size}`,
            "status=none",
          ]);
        }
        assert.equal(prop(c, `evidence:section:${name}:sha256`), sha256File(out), `${input.path} ${name}`);
        checked++;
      }
      // And .text once more the way the issue says: objcopy -O binary --only-section=.text.
      const text = join(tmp, `${checked}.text.bin`);
      execFileSync("objcopy", ["-O", "binary", "--only-section=.text", input.path, text]);
      assert.equal(prop(c, "evidence:section:.text:sha256"), sha256File(text));
      if (input.funcproofRef === undefined) {
        assert.equal(c.externalReferences, undefined);
      } else {
        assert.equal(prop(c, "evidence:funcproof:referrer"), input.funcproofRef.digest);
        assert.deepEqual(c.externalReferences, [
          {
            url: input.funcproofRef.registryRef,
            type: "attestation",
            hashes: [{ alg: "SHA-256", content: input.funcproofRef.digest.slice(7) }],
            comment: `FuncProof referrer (${input.funcproofRef.mediaType})`,
          },
        ]);
      }
    }
    assert.ok(checked >= 8, `checked ${checked} sections`);
    const image = bom.dependencies.find((d) => d.ref === bom.metadata.component["bom-ref"]);
    assert.deepEqual(image?.dependsOn, inputs.map((i) => `file:${i.path}`).sort());
  });

  it("is deterministic: same bytes across runs and input orders; serial number follows content", () => {
    const purls = new Map([[ELF_FILES[0] ?? "", "pkg:deb/debian/coreutils@9.1-1?arch=amd64"]]);
    const a = elfSbom({ image: IMAGE, files: inputs, purls, created: CREATED });
    const b = elfSbom({ image: IMAGE, files: inputs, purls, created: CREATED });
    assert.equal(a, b);
    // Shuffled files, and each FuncProof with its sections in another key order.
    const shuffled = [...inputs].reverse().map((f) => ({
      ...f,
      funcproof: {
        ...f.funcproof,
        sections: Object.fromEntries(Object.entries(f.funcproof.sections).reverse()),
      },
    }));
    assert.equal(elfSbom({ image: IMAGE, files: shuffled, purls, created: CREATED }), a);
    const other = elfSbom({ image: { ...IMAGE, name: "other" }, files: inputs, purls, created: CREATED });
    assert.notEqual((JSON.parse(other) as CdxBom).serialNumber, (JSON.parse(a) as CdxBom).serialNumber);
    const given = "urn:uuid:00000000-0000-4000-8000-000000000000";
    assert.equal(
      (JSON.parse(elfSbom({ image: IMAGE, files: inputs, serialNumber: given })) as CdxBom).serialNumber,
      given,
    );
    const ls = (JSON.parse(a) as CdxBom).components.find((c) => c.name === ELF_FILES[0]);
    assert.equal(ls?.purl, purls.get(ELF_FILES[0] ?? ""));
    assert.throws(
      () => elfSbom({ image: IMAGE, files: [...inputs, ...inputs.slice(0, 1)] }),
      /duplicate path/,
    );
  });
});

describe("deltaSbom (CycloneDX 1.6)", () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "sbom-delta-"));
  });
  after(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  function createDelta(base: string, target: string): DeltaManifest {
    const out = join(tmp, String(Math.random()).slice(2));
    execFileSync(
      process.execPath,
      [join(ROOT, "cli/stella.ts"), "delta", "create", "--base", base, "--target", target, "--out", out],
      {
        stdio: "ignore",
      },
    );
    return JSON.parse(readFileSync(join(out, "delta-manifest.json"), "utf8")) as DeltaManifest;
  }

  it("describes a real .deb delta: the changed package and modified files; valid", async () => {
    const debs = join(TESTDATA, "debs");
    const manifest = createDelta(
      join(debs, "libssl3_3.0.20-1~deb12u2_amd64.deb"),
      join(debs, "libssl3_3.0.22-1~deb12u2_amd64.deb"),
    );
    const json = deltaSbom({
      base: { name: "libssl3 3.0.20" },
      target: { name: "libssl3 3.0.22" },
      manifest,
    });
    const v = await validateCycloneDx16(json);
    assert.deepEqual(v.errors, []);
    assert.equal(
      deltaSbom({ base: { name: "libssl3 3.0.20" }, target: { name: "libssl3 3.0.22" }, manifest }),
      json,
    );

    const bom = JSON.parse(json) as CdxBom;
    const meta = bom.metadata.properties ?? [];
    const metaProp = (n: string): string | undefined => meta.find((p) => p.name === n)?.value;
    assert.equal(metaProp("evidence:delta:base:digest"), manifest.base_digest);
    assert.equal(metaProp("evidence:delta:target:digest"), manifest.target_digest);
    assert.match(metaProp("evidence:delta_risk:score-inputs:sha256") ?? "", /^sha256:[0-9a-f]{64}$/);
    assert.equal(bom.metadata.component.type, "file");

    const changed = manifest.materials_delta.changed[0];
    assert.ok(changed, "the fixture changes the libssl3 package");
    const pkg = bom.components.find((c) => c.type === "library" && c.name === changed.name);
    assert.ok(pkg);
    assert.equal(pkg.version, changed.to.version);
    assert.equal(prop(pkg, "evidence:delta:change"), "changed");
    assert.equal(prop(pkg, "evidence:delta:from:version"), changed.from.version);
    assert.equal(pkg.purl, `pkg:deb/libssl3@${encodeURIComponent(changed.to.version)}?arch=amd64`);

    const files = bom.components.filter((c) => c.type === "file");
    assert.deepEqual(files.map((c) => c.name).sort(), [...manifest.entries_delta.paths.modified].sort());
    for (const f of files) assert.equal(prop(f, "evidence:delta:change"), "modified");
  });

  it("records added and removed files of an ELF-to-ELF delta; valid", async () => {
    const manifest = createDelta(join(TESTDATA, "prog-v1"), join(TESTDATA, "prog-v2"));
    const bom = JSON.parse(deltaSbom({ manifest })) as CdxBom;
    assert.deepEqual((await validateCycloneDx16(JSON.stringify(bom))).errors, []);
    for (const path of manifest.entries_delta.paths.added) {
      const c = bom.components.find((x) => x.name === path);
      assert.equal(c && prop(c, "evidence:delta:change"), "added");
    }
    const removed = (bom.metadata.properties ?? []).filter((p) => p.name === "evidence:delta:file:removed");
    assert.deepEqual(
      removed.map((p) => p.value),
      manifest.entries_delta.paths.removed,
    );
  });
});
