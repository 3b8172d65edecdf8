/**
 * `stella delta` as users run it: a real child process, real files (Debian releases, images built by
 * umoci, binaries built by gcc, zips written by zip), exit codes and --json checked. Covers the seed's
 * test matrix end to end, determinism, rollback acceptance and denial, and corruption refused with
 * nothing written.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";

import { parseAllDocuments } from "yaml";

import { debFile, run, workDir } from "../../core/artifacts/test-packages.ts";
import { prngBytes } from "../../core/delta/test-helpers.ts";
import { attest } from "../../core/dsse/attest.ts";
import { envelopeToJson } from "../../core/dsse/envelope.ts";
import { generateKeyPair, loadPrivateKey } from "../../core/dsse/keys.ts";
import { keySigner } from "../../core/dsse/sign.ts";
import { runStella } from "../../core/dsse/testdata/oracles.ts";
import { SLSA_PROVENANCE_V1 } from "../../core/risk/inputs.ts";
import type { RunResult } from "../../core/testing/run.ts";
import { rootSchema } from "../../crds/gen.ts";
import { deltaAttestation } from "../../crds/schema/deltaattestation.ts";
import { validateStructural } from "../../crds/validate.ts";

function stella(...args: string[]): Promise<RunResult> {
  return runStella(args);
}

let dir: string;
const p = (...names: string[]): string => join(dir, ...names);

interface Risk {
  score: number;
  breakdown: { factor: string; reasons: string[] }[];
}
interface CreateJson {
  out: string;
  files: string[];
  base_digest: string;
  target_digest: string;
  artifact_type: string;
  ops: { copiedBytes: number; addedBytes: number; changedBytes: number };
  functions_changed: { binaries: number; added: number; removed: number; modified: number };
  materials_delta: { added: number; removed: number; changed: number };
  delta_risk: Risk;
}

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the shape it expects
function json<T>(r: RunResult): T {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

const sha256sum = (file: string): string => `sha256:${run("sha256sum", [file]).split(" ")[0] ?? ""}`;

/** Files of a directory, recursively, relative path → bytes. */
function tree(root: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) walk(r);
      else out.set(r, readFileSync(join(root, r)));
    }
  };
  walk("");
  return out;
}

/** No file left in `d` other than those listed (no temporary file from an aborted write). */
function onlyFiles(d: string, names: string[]): void {
  assert.deepEqual(readdirSync(d).sort(), [...names].sort());
}

function flip(file: string, at: number): void {
  const b = readFileSync(file);
  const i = at < 0 ? b.length + at : at;
  b[i] = (b[i] ?? 0) ^ 0x01;
  writeFileSync(file, b);
}

before(() => {
  dir = workDir("delta-cli");
  const ed = generateKeyPair("ed25519");
  const ec = generateKeyPair("ecdsa-p256");
  const stranger = generateKeyPair("ed25519");
  writeFileSync(p("ed.key"), ed.privatePem);
  writeFileSync(p("ed.pub"), ed.publicPem);
  writeFileSync(p("ec.key"), ec.privatePem);
  writeFileSync(p("ec.pub"), ec.publicPem);
  writeFileSync(p("stranger.pub"), stranger.publicPem);
  // A 4 MiB file and the same with a 12-byte edit.
  const a = Buffer.from(prngBytes(4 << 20, 11));
  const b = Buffer.from(a);
  b.write("small edit!!", 3_000_001, "latin1");
  writeFileSync(p("large-a"), a);
  writeFileSync(p("large-b"), b);
});

describe("stella delta: usage", () => {
  it("--help works on every subcommand, with examples", async () => {
    for (const sub of ["create", "verify", "apply", "rollback"]) {
      const r = await stella("delta", sub, "--help");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`Usage: stella delta ${sub}`));
      assert.match(r.stdout, /Examples:/);
      assert.match(r.stdout, /Exit:/);
    }
    assert.equal((await stella("delta", "--help")).code, 0);
  });

  it("usage errors exit 2", async () => {
    assert.equal((await stella("delta", "create", "--base", p("large-a"), "--out", p("u"))).code, 2);
    const r = await stella(
      "delta",
      "create",
      "--base",
      p("large-a"),
      "--target",
      p("large-b"),
      "--out",
      p("u"),
      "--rollback",
    );
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--rollback needs --sign/);
    const s = await stella(
      "delta",
      "create",
      "--base",
      p("large-a"),
      "--target",
      p("large-b"),
      "--out",
      p("u"),
      "--sbom-base",
      p("x"),
    );
    assert.equal(s.code, 2);
    assert.equal(
      (await stella("delta", "create", "--base", "a", "--target", "b", "--out", "c", "--level", "99")).code,
      2,
    );
    assert.equal(
      (await stella("delta", "rollback", "--target", "a", "--delta", "b", "--out", "c")).code,
      2,
      "--key is required",
    );
    const cr = await stella(
      "delta",
      "create",
      "--base",
      p("large-a"),
      "--target",
      p("large-b"),
      "--out",
      p("u"),
      "--emit-cr",
      p("u.yaml"),
    );
    assert.equal(cr.code, 2);
    assert.match(cr.stderr, /--emit-cr needs --sign/);
    assert.ok(!existsSync(p("u")), "nothing written");
  });

  it("a missing input exits 3 naming it", async () => {
    const r = await stella(
      "delta",
      "create",
      "--base",
      p("nope"),
      "--target",
      p("large-b"),
      "--out",
      p("u3"),
    );
    assert.equal(r.code, 3);
    assert.match(r.stderr, /nope/);
  });
});

describe("stella delta on a small edit in a large file", () => {
  it("create --json: the ADD is tiny; verify and apply round-trip", async () => {
    const c = json<CreateJson>(
      await stella(
        "delta",
        "create",
        "--base",
        p("large-a"),
        "--target",
        p("large-b"),
        "--out",
        p("small"),
        "--level",
        "3",
        "--json",
      ),
    );
    assert.ok(c.ops.changedBytes <= 12 && c.ops.addedBytes < 512, JSON.stringify(c.ops));
    assert.deepEqual(c.files, ["delta-manifest.json", "delta.bin"]);
    const v = json<{ verified: boolean; signature: { checked: boolean } }>(
      await stella("delta", "verify", "--base", p("large-a"), "--delta", p("small"), "--json"),
    );
    assert.deepEqual([v.verified, v.signature.checked], [true, false]);
    const a = await stella(
      "delta",
      "apply",
      "--base",
      p("large-a"),
      "--delta",
      p("small"),
      "--out",
      p("small-out"),
    );
    assert.equal(a.code, 0, a.stderr);
    assert.deepEqual(readFileSync(p("small-out")), readFileSync(p("large-b")));
  });
});

describe("stella delta: corruption is refused, naming the file and field, with nothing written", () => {
  let good = "";
  before(async () => {
    good = p("corrupt-good");
    const r = await stella(
      "delta",
      "create",
      "--base",
      p("large-a"),
      "--target",
      p("large-b"),
      "--out",
      good,
      "--sign",
      p("ed.key"),
      "--level",
      "3",
    );
    assert.equal(r.code, 0, r.stderr);
  });

  /** Copies the good delta, breaks it, and checks that verify and apply refuse it with exit 1. */
  async function refused(
    name: string,
    breakIt: (d: string) => void,
    file: RegExp,
    field: RegExp,
  ): Promise<void> {
    const d = p(`corrupt-${name}`);
    cpSync(good, d, { recursive: true });
    breakIt(d);
    const outDir = p(`out-${name}`);
    mkdirSync(outDir);
    const v = await stella(
      "delta",
      "verify",
      "--base",
      p("large-a"),
      "--delta",
      d,
      "--key",
      p("ed.pub"),
      "--json",
    );
    assert.equal(v.code, 1, `${name}: ${v.stderr}`);
    const err = (
      JSON.parse(v.stdout) as { verified: boolean; error: { file: string; field: string; message: string } }
    ).error;
    assert.match(err.file, file, `${name}: ${err.message}`);
    assert.match(err.field, field, `${name}: ${err.message}`);
    const named = new RegExp(file.source.replace(/\$$/, ""));
    assert.match(v.stderr, named);
    const a = await stella(
      "delta",
      "apply",
      "--base",
      p("large-a"),
      "--delta",
      d,
      "--key",
      p("ed.pub"),
      "--out",
      join(outDir, "b"),
    );
    assert.equal(a.code, 1, `${name}: ${a.stderr}`);
    assert.match(a.stderr, named);
    onlyFiles(outDir, []);
  }

  it("flipped bytes in each region of delta.bin, and truncation", async () => {
    await refused(
      "bin-magic",
      (d) => {
        flip(join(d, "delta.bin"), 0);
      },
      /delta\.bin$/,
      /^magic$/,
    );
    await refused(
      "bin-header",
      (d) => {
        flip(join(d, "delta.bin"), 40);
      },
      /delta\.bin$/,
      /header/,
    );
    await refused(
      "bin-body",
      (d) => {
        flip(join(d, "delta.bin"), 200);
      },
      /delta\.bin$/,
      /.+/,
    );
    await refused(
      "bin-tail",
      (d) => {
        flip(join(d, "delta.bin"), -1);
      },
      /delta\.bin$/,
      /.+/,
    );
    await refused(
      "bin-truncated",
      (d) => {
        writeFileSync(join(d, "delta.bin"), readFileSync(join(d, "delta.bin")).subarray(0, 300));
      },
      /delta\.bin$/,
      /.+/,
    );
  });

  it("a flipped byte in the manifest: a digest, a count, the JSON itself", async () => {
    const edit = (d: string, from: RegExp, to: (m: string) => string): void => {
      const f = join(d, "delta-manifest.json");
      const t = readFileSync(f, "utf8");
      assert.match(t, from);
      writeFileSync(f, t.replace(from, to));
    };
    await refused(
      "manifest-digest",
      (d) => {
        edit(d, /"target_digest":"sha256:[0-9a-f]/, (m) => m.slice(0, -1) + (m.endsWith("0") ? "1" : "0"));
      },
      /delta-manifest\.json$/,
      /^target_digest$/,
    );
    await refused(
      "manifest-count",
      (d) => {
        edit(d, /"copyRangeOps":\d/, (m) => m.slice(0, -1) + String((Number(m.slice(-1)) + 1) % 10));
      },
      /delta-manifest\.json$/,
      /^ops\.copyRangeOps$/,
    );
    await refused(
      "manifest-json",
      (d) => {
        flip(join(d, "delta-manifest.json"), 0);
      },
      /delta-manifest\.json$/,
      /^\(document\)$/,
    );
    // A change verify cannot cross-check against delta.bin is still caught by the signature.
    await refused(
      "manifest-unchecked",
      (d) => {
        edit(d, /"unchanged":\d+/, (m) => `"unchanged":${Number(m.split(":")[1]) + 1}`);
      },
      /delta\.dsse\.json$/,
      /^predicate\.entries_delta\.unchanged$/,
    );
  });

  it("a flipped byte in the envelope, a missing envelope, an untrusted key", async () => {
    await refused(
      "envelope-sig",
      (d) => {
        const f = join(d, "delta.dsse.json");
        const e = JSON.parse(readFileSync(f, "utf8")) as { signatures: { sig: string }[] };
        const s = e.signatures[0] as { sig: string };
        s.sig = (s.sig.startsWith("A") ? "B" : "A") + s.sig.slice(1);
        writeFileSync(f, JSON.stringify(e));
      },
      /delta\.dsse\.json$/,
      /^signatures$/,
    );
    await refused(
      "envelope-json",
      (d) => {
        flip(join(d, "delta.dsse.json"), 0);
      },
      /delta\.dsse\.json$/,
      /^\(document\)$/,
    );
    await refused(
      "envelope-missing",
      (d) => {
        rmSync(join(d, "delta.dsse.json"));
      },
      /delta\.dsse\.json$/,
      /^\(file\)$/,
    );
    const r = await stella(
      "delta",
      "verify",
      "--base",
      p("large-a"),
      "--delta",
      good,
      "--key",
      p("stranger.pub"),
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /delta\.dsse\.json: signatures: DSSE_/);
  });

  it("the wrong base", async () => {
    const outDir = p("out-wrong-base");
    mkdirSync(outDir);
    const r = await stella(
      "delta",
      "apply",
      "--base",
      p("large-b"),
      "--delta",
      good,
      "--out",
      join(outDir, "x"),
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /large-b: base_digest: is sha256:[0-9a-f]{64}, the delta was made from/);
    onlyFiles(outDir, []);
  });
});

describe("stella delta on the real libssl3 3.0.20 → 3.0.22 .debs", () => {
  let A = "";
  let B = "";
  before(() => {
    A = debFile("libssl3=3.0.20-1~deb12u2");
    B = debFile("libssl3=3.0.22-1~deb12u2");
  });

  it("create --sign --rollback; verify; apply(A, create(A,B)) == B; rollback(B) == A with the signed attestation", async () => {
    const d = p("deb");
    const c = json<CreateJson>(
      await stella(
        "delta",
        "create",
        "--base",
        A,
        "--target",
        B,
        "--out",
        d,
        "--sign",
        p("ec.key"),
        "--rollback",
        "--level",
        "3",
        "--json",
      ),
    );
    assert.equal(c.artifact_type, "deb");
    assert.equal(c.target_digest, sha256sum(B));
    assert.deepEqual(c.files, [
      "delta-manifest.json",
      "delta.bin",
      "delta.dsse.json",
      "rollback/delta-manifest.json",
      "rollback/delta.bin",
      "rollback/rollback.dsse.json",
    ]);
    assert.ok(c.functions_changed.modified > 0, JSON.stringify(c.functions_changed));
    const m = JSON.parse(readFileSync(join(d, "delta-manifest.json"), "utf8")) as {
      materials_delta: { changed: { name: string; from: { version: string }; to: { version: string } }[] };
    };
    assert.deepEqual(
      m.materials_delta.changed.map((x) => `${x.name} ${x.from.version} → ${x.to.version}`),
      ["libssl3 3.0.20-1~deb12u2 → 3.0.22-1~deb12u2"],
    );

    const v = await stella("delta", "verify", "--base", A, "--delta", d, "--key", p("ec.pub"));
    assert.equal(v.code, 0, v.stderr);
    assert.match(
      v.stdout,
      /^verified .*: sha256:[0-9a-f]{64} → sha256:[0-9a-f]{64} \(deb, \d+ ops\); signed by \[/,
    );
    const out = p("deb-B.deb");
    const ap = json<{ applied: boolean; digest: string }>(
      await stella("delta", "apply", "--base", A, "--delta", d, "--key", p("ec.pub"), "--out", out, "--json"),
    );
    assert.equal(ap.digest, sha256sum(B));
    assert.deepEqual(readFileSync(out), readFileSync(B));

    const back = p("deb-A.deb");
    const rb = json<{ rolledBack: boolean; digest: string }>(
      await stella(
        "delta",
        "rollback",
        "--target",
        B,
        "--delta",
        d,
        "--key",
        p("ec.pub"),
        "--out",
        back,
        "--json",
      ),
    );
    assert.equal(rb.digest, sha256sum(A));
    assert.deepEqual(readFileSync(back), readFileSync(A));

    // Denied: without the signed rollback attestation, with an untrusted key, from the wrong artifact.
    const outDir = p("deb-denied");
    mkdirSync(outDir);
    const noAtt = p("deb-no-attestation");
    cpSync(d, noAtt, { recursive: true });
    rmSync(join(noAtt, "rollback", "rollback.dsse.json"));
    const r1 = await stella(
      "delta",
      "rollback",
      "--target",
      B,
      "--delta",
      noAtt,
      "--key",
      p("ec.pub"),
      "--out",
      join(outDir, "a"),
    );
    assert.equal(r1.code, 1);
    assert.match(
      r1.stderr,
      /ROLLBACK_DENIED: .*rollback\.dsse\.json: missing: a rollback is refused without a signed rollback attestation/,
    );
    const r2 = await stella(
      "delta",
      "rollback",
      "--target",
      B,
      "--delta",
      d,
      "--key",
      p("stranger.pub"),
      "--out",
      join(outDir, "a"),
    );
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /rollback\.dsse\.json: signatures: DSSE_/);
    const r3 = await stella(
      "delta",
      "rollback",
      "--target",
      A,
      "--delta",
      d,
      "--key",
      p("ec.pub"),
      "--out",
      join(outDir, "a"),
      "--json",
    );
    assert.equal(r3.code, 1);
    assert.match(
      (JSON.parse(r3.stdout) as { error: { field: string } }).error.field,
      /^predicate\.from\.digest$/,
    );
    // The forward manifest swapped for another: the attestation no longer binds it.
    const swapped = p("deb-swapped");
    cpSync(d, swapped, { recursive: true });
    copyFileSync(join(p("corrupt-good"), "delta-manifest.json"), join(swapped, "delta-manifest.json"));
    const r4 = await stella(
      "delta",
      "rollback",
      "--target",
      B,
      "--delta",
      swapped,
      "--key",
      p("ec.pub"),
      "--out",
      join(outDir, "a"),
    );
    assert.equal(r4.code, 1);
    assert.match(r4.stderr, /predicate\.forward\.manifest_digest/);
    // A rollback delta.bin replaced by the forward one: refused before anything is applied.
    const replaced = p("deb-replaced");
    cpSync(d, replaced, { recursive: true });
    copyFileSync(join(d, "delta.bin"), join(replaced, "rollback", "delta.bin"));
    const r5 = await stella(
      "delta",
      "rollback",
      "--target",
      B,
      "--delta",
      replaced,
      "--key",
      p("ec.pub"),
      "--out",
      join(outDir, "a"),
    );
    assert.equal(r5.code, 1);
    assert.match(r5.stderr, /rollback\/delta-manifest\.json: delta\.digest/);
    onlyFiles(outDir, []);
  });
});

describe("stella delta is deterministic", () => {
  it("two runs (Ed25519 signature, SOURCE_DATE_EPOCH) write identical bytes", async () => {
    const args = (out: string): string[] => [
      "delta",
      "create",
      "--base",
      p("large-a"),
      "--target",
      p("large-b"),
      "--out",
      out,
      "--sign",
      p("ed.key"),
      "--rollback",
      "--level",
      "3",
    ];
    const saved = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = "1700000000";
    try {
      assert.equal((await stella(...args(p("det-1")))).code, 0);
      assert.equal((await stella(...args(p("det-2")))).code, 0);
    } finally {
      if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = saved;
    }
    const one = tree(p("det-1"));
    const two = tree(p("det-2"));
    assert.deepEqual([...one.keys()].sort(), [...two.keys()].sort());
    for (const [k, v] of one) assert.deepEqual(v, two.get(k), k);
    assert.match(one.get("delta-manifest.json")?.toString() ?? "", /"created":"2023-11-14T22:13:20.000Z"/);
    // --created gives the same bytes as SOURCE_DATE_EPOCH for the same instant.
    assert.equal((await stella(...args(p("det-3")), "--created", "2023-11-14T22:13:20Z")).code, 0);
    assert.deepEqual(tree(p("det-3")).get("delta-manifest.json"), one.get("delta-manifest.json"));
  });
});

describe("stella delta: the seed's test matrix", () => {
  it("a zip repacked with the same payload: COPY dominates", async () => {
    const src = p("zsrc");
    mkdirSync(src);
    for (let i = 0; i < 6; i++) writeFileSync(join(src, `f${i}.dat`), prngBytes(40_000, 50 + i));
    const names = readdirSync(src).sort();
    execFileSync("zip", ["-q", p("a.zip"), "-@"], { cwd: src, input: names.join("\n") });
    for (const n of names) utimesSync(join(src, n), 1_600_000_000, 1_600_000_000);
    execFileSync("zip", ["-q", "-X", p("b.zip"), "-@"], { cwd: src, input: [...names].reverse().join("\n") });
    const c = json<CreateJson & { target_size?: number }>(
      await stella(
        "delta",
        "create",
        "--base",
        p("a.zip"),
        "--target",
        p("b.zip"),
        "--out",
        p("zipd"),
        "--json",
        "--level",
        "3",
      ),
    );
    assert.equal(c.artifact_type, "zip");
    const size = readFileSync(p("b.zip")).length;
    assert.ok(c.ops.copiedBytes / size > 0.8, `${c.ops.copiedBytes} / ${size}`);
  });

  it("stripped vs non-stripped ELF: functions compare gracefully", async () => {
    const c = p("lib.c");
    writeFileSync(
      c,
      "static int h(int x){return x*7+1;}\nint exported_a(int x){return h(x)^3;}\nint exported_b(int x){return x*KVAL+h(x);}\n",
    );
    execFileSync("gcc", ["-O1", "-shared", "-fPIC", "-DKVAL=5", "-o", p("lib1.so"), c]);
    execFileSync("gcc", ["-O1", "-shared", "-fPIC", "-DKVAL=9", "-o", p("lib2.so"), c]);
    execFileSync("strip", [p("lib2.so")]);
    const r = json<CreateJson>(
      await stella(
        "delta",
        "create",
        "--base",
        p("lib1.so"),
        "--target",
        p("lib2.so"),
        "--out",
        p("elfd"),
        "--json",
      ),
    );
    assert.deepEqual(
      [
        r.functions_changed.binaries,
        r.functions_changed.added,
        r.functions_changed.removed,
        r.functions_changed.modified,
      ],
      [1, 0, 0, 1],
    );
    const m = JSON.parse(readFileSync(p("elfd", "delta-manifest.json"), "utf8")) as {
      functions_changed: {
        per_binary: { compared: string; note: string }[];
        top_symbols: { symbol: string }[];
      };
    };
    assert.equal(m.functions_changed.per_binary[0]?.compared, "exported");
    assert.deepEqual(
      m.functions_changed.top_symbols.map((s) => s.symbol),
      ["exported_b"],
    );
  });

  it("missing SLSA provenance but a valid signature: gap recorded, higher score than with verified provenance", async () => {
    const vendor = generateKeyPair("ecdsa-p256");
    const builder = generateKeyPair("ed25519");
    writeFileSync(p("vendor.pub"), vendor.publicPem);
    writeFileSync(p("builder.pub"), builder.publicPem);
    const subjects = [{ name: "large-b", digest: { sha256: sha256sum(p("large-b")).slice(7) } }];
    const sign = (pem: string, name: string) => keySigner(loadPrivateKey(pem, name));
    writeFileSync(
      p("vendor.json"),
      envelopeToJson(
        await attest({
          subjects,
          predicateType: "https://vendor.example/signed/v1",
          predicate: { ok: true },
          signers: [sign(vendor.privatePem, "v")],
        }),
      ),
    );
    writeFileSync(
      p("slsa.json"),
      envelopeToJson(
        await attest({
          subjects,
          predicateType: SLSA_PROVENANCE_V1,
          predicate: {
            buildDefinition: {
              buildType: "https://example.com/b/v1",
              externalParameters: {},
              resolvedDependencies: [],
            },
            runDetails: { builder: { id: "https://ci.example/builder" } },
          },
          signers: [sign(builder.privatePem, "b")],
        }),
      ),
    );
    const base = [
      "delta",
      "create",
      "--base",
      p("large-a"),
      "--target",
      p("large-b"),
      "--level",
      "3",
      "--json",
      "--created",
      "2026-11-25T00:00:00Z",
    ];
    const gap = json<CreateJson>(
      await stella(
        ...base,
        "--out",
        p("gap"),
        "--attestation",
        p("vendor.json"),
        "--trusted-key",
        p("vendor.pub"),
      ),
    );
    const prov = gap.delta_risk.breakdown.find((b) => b.factor === "provenance_completeness");
    assert.ok(
      prov?.reasons.some((r) => r.startsWith("provenance gap: no SLSA provenance")),
      JSON.stringify(prov),
    );
    assert.ok(prov?.reasons.includes("DSSE signature valid"), JSON.stringify(prov));
    assert.ok(existsSync(p("gap", "attestations")), "the evidence is kept beside the delta");
    const full = json<CreateJson>(
      await stella(
        ...base,
        "--out",
        p("full"),
        "--attestation",
        p("vendor.json"),
        "--provenance",
        p("slsa.json"),
        "--trusted-key",
        p("vendor.pub"),
        "--trusted-key",
        p("builder.pub"),
      ),
    );
    assert.ok(
      gap.delta_risk.score > full.delta_risk.score,
      `${gap.delta_risk.score} > ${full.delta_risk.score}`,
    );
    // The human output prints the breakdown table.
    const human = await stella(
      ...base.filter((a) => a !== "--json"),
      "--out",
      p("gap-h"),
      "--attestation",
      p("vendor.json"),
      "--trusted-key",
      p("vendor.pub"),
    );
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^delta .*: file sha256:/);
    assert.match(human.stdout, /FACTOR +VALUE +WEIGHT +CONTRIBUTION +REASONS/);
    assert.match(human.stdout, /provenance gap/);
    // verify re-checks the kept evidence: a tampered attestation file is refused.
    const [att] = readdirSync(p("gap", "attestations"));
    flip(p("gap", "attestations", att ?? ""), 10);
    const v = await stella("delta", "verify", "--base", p("large-a"), "--delta", p("gap"));
    assert.equal(v.code, 1);
    assert.match(v.stderr, /delta-manifest\.json: attestations\[0\]\.digest/);
  });

  it("an added dependency layer in an OCI image: materials_delta names it; apply rebuilds the layout's canonical tar", async () => {
    const zlib = debFile("zlib1g");
    const ssl = debFile("libssl3=3.0.22-1~deb12u2");
    const rootfs = (name: string, debs: string[], status: string[]): string => {
      const r = p(name);
      mkdirSync(join(r, "var", "lib", "dpkg"), { recursive: true });
      for (const d of debs) run("dpkg-deb", ["-x", d, r]);
      writeFileSync(
        join(r, "var", "lib", "dpkg", "status"),
        status
          .map(
            (d) =>
              run("dpkg-deb", ["-f", d, "Package", "Version", "Architecture"]) +
              "Status: install ok installed\n",
          )
          .join("\n"),
      );
      return r;
    };
    const baseLayout = p("img-base");
    run("umoci", ["init", "--layout", baseLayout]);
    run("umoci", ["new", "--image", `${baseLayout}:latest`]);
    run("umoci", ["insert", "--image", `${baseLayout}:latest`, rootfs("rootfs-base", [zlib], [zlib]), "/"]);
    const targetLayout = p("img-target");
    cpSync(baseLayout, targetLayout, { recursive: true });
    run("umoci", [
      "insert",
      "--image",
      `${targetLayout}:latest`,
      rootfs("rootfs-dep", [ssl], [zlib, ssl]),
      "/",
    ]);

    const c = json<CreateJson>(
      await stella(
        "delta",
        "create",
        "--base",
        baseLayout,
        "--target",
        targetLayout,
        "--out",
        p("imgd"),
        "--json",
        "--level",
        "3",
        "--sign",
        p("ed.key"),
        "--emit-cr",
        p("imgd.yaml"),
        "--rollback",
      ),
    );
    assert.equal(c.artifact_type, "oci-layout");
    assert.deepEqual(c.materials_delta, { added: 1, removed: 0, changed: 0 });
    const m = JSON.parse(readFileSync(p("imgd", "delta-manifest.json"), "utf8")) as {
      materials_delta: { added: { name: string; version: string; source: string }[] };
      entries_delta: { paths: { added: string[] } };
      image_digests: { base: string; target: string };
    };
    assert.deepEqual(
      m.materials_delta.added.map((x) => `${x.name} ${x.version} ${x.source}`),
      ["libssl3 3.0.22-1~deb12u2 dpkg"],
    );
    assert.ok(m.entries_delta.paths.added.includes("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"));
    assert.match(m.image_digests.target, /^sha256:[0-9a-f]{64}$/);
    assert.ok(
      c.delta_risk.breakdown.some(
        (b) => b.factor === "new_deps_count" && b.reasons.some((r) => r.startsWith("1 new")),
      ),
    );

    // The DeltaAttestation resource conforms to the CRD and names the images by their manifest digests.
    interface Cr {
      kind: string;
      metadata: { name: string };
      spec: {
        baseDigest: string;
        targetDigest: string;
        materialsDelta: { added: { name: string }[]; removed: { name: string }[] };
        envelope: { payload: string };
        rollbackOf?: { name: string };
      };
    }
    const docs = parseAllDocuments(readFileSync(p("imgd.yaml"), "utf8")).map((d) => d.toJS() as Cr);
    assert.equal(docs.length, 2, "the forward delta and its rollback");
    const [cr, rb] = docs as [Cr, Cr];
    assert.deepEqual(validateStructural(rootSchema(deltaAttestation), cr), []);
    assert.equal(cr.kind, "DeltaAttestation");
    assert.deepEqual(
      [cr.spec.baseDigest, cr.spec.targetDigest],
      [m.image_digests.base, m.image_digests.target],
    );
    assert.deepEqual(
      cr.spec.materialsDelta.added.map((x) => x.name),
      ["libssl3"],
    );
    // The rollback goes target → base, names the forward resource and carries the signed rollback attestation.
    assert.deepEqual(validateStructural(rootSchema(deltaAttestation), rb), []);
    assert.deepEqual(
      [rb.spec.baseDigest, rb.spec.targetDigest, rb.spec.rollbackOf?.name],
      [m.image_digests.target, m.image_digests.base, cr.metadata.name],
    );
    assert.notEqual(rb.metadata.name, cr.metadata.name);
    assert.deepEqual(
      rb.spec.materialsDelta.removed.map((x) => x.name),
      ["libssl3"],
    );
    const rbStatement = JSON.parse(Buffer.from(rb.spec.envelope.payload, "base64").toString("utf8")) as {
      predicateType: string;
    };
    assert.equal(rbStatement.predicateType, "stellaops.delta-rollback.v1");

    const out = p("img-target.tar");
    const ap = await stella("delta", "apply", "--base", baseLayout, "--delta", p("imgd"), "--out", out);
    assert.equal(ap.code, 0, ap.stderr);
    assert.match(ap.stdout, /canonical tar of the oci-layout/);
    assert.equal(sha256sum(out), c.target_digest);
    const x = p("img-extracted");
    mkdirSync(x);
    run("tar", ["-xf", out, "-C", x]);
    assert.deepEqual(tree(x), tree(targetLayout), "the tar extracts to the target layout");
  });
});
