import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { bundleFromJSON } from "@sigstore/bundle";

import { envelopeToJson } from "../../core/dsse/envelope.ts";
import { generateKeyPair, loadPrivateKey } from "../../core/dsse/keys.ts";
import { keySigner, signEnvelope } from "../../core/dsse/sign.ts";
import { runStella, tempDir } from "../../core/dsse/testdata/oracles.ts";
import type { RunResult } from "../../core/testing/run.ts";

/** `stella …args` in a child process (see runStella). */
function stella(...args: string[]): Promise<RunResult> {
  return runStella(args);
}

const sha256 = (data: string): string => createHash("sha256").update(data).digest("hex");

describe("stella attest", () => {
  let dir = "";
  let cleanup = (): void => undefined;
  const p = (name: string): string => join(dir, name);
  let keyidA = "";
  let keyidB = "";

  before(() => {
    ({ dir, cleanup } = tempDir("stella-attest-cli-"));
    const a = generateKeyPair("ecdsa-p256");
    const b = generateKeyPair("ed25519");
    keyidA = a.keyid;
    keyidB = b.keyid;
    writeFileSync(p("a.key"), a.privatePem);
    writeFileSync(p("a.pub"), a.publicPem);
    writeFileSync(p("b.key"), b.privatePem);
    writeFileSync(p("b.pub"), b.publicPem);
    writeFileSync(p("app"), "the app binary");
    writeFileSync(p("lib.so"), "a library");
    writeFileSync(p("predicate.json"), '{"tool":"stella","n":1}');
  });
  after(() => {
    cleanup();
  });

  const PT = "https://stella.example/FuncProof/v1";

  it("sign --out --bundle, then verify both (human and --json)", async () => {
    const signed = await stella(
      "attest",
      "sign",
      "--key",
      p("a.key"),
      "--predicate-type",
      PT,
      "--subject",
      p("lib.so"),
      "--subject",
      p("app"),
      "--subject-name",
      "usr/lib/lib.so",
      "--subject-name",
      "app",
      "--out",
      p("env.json"),
      "--bundle",
      p("bundle.json"),
      p("predicate.json"),
    );
    assert.equal(signed.code, 0, signed.stderr);
    assert.equal(signed.stdout, "");

    const env = JSON.parse(readFileSync(p("env.json"), "utf8")) as {
      payloadType: string;
      signatures: { keyid: string }[];
    };
    assert.equal(env.payloadType, "application/vnd.in-toto+json");
    assert.equal(env.signatures[0]?.keyid, keyidA);
    assert.equal(readFileSync(p("env.json"), "utf8"), `${envelopeToJson(env as never)}\n`); // canonical
    const bundle = JSON.parse(readFileSync(p("bundle.json"), "utf8")) as { dsseEnvelope: unknown };
    assert.deepEqual(bundle.dsseEnvelope, env);
    bundleFromJSON(bundle);

    const human = await stella("attest", "verify", "--key", p("a.pub"), p("env.json"));
    assert.equal(human.code, 0, human.stderr);
    assert.equal(human.stdout.split("\n").length, 2); // one line
    assert.match(
      human.stdout,
      new RegExp(`^verified .*env\\.json: signed by 1 trusted key\\(s\\) \\[${keyidA}\\]`),
    );
    assert.match(
      human.stdout,
      /predicateType https:\/\/stella\.example\/FuncProof\/v1; subject\(s\): app, usr\/lib\/lib\.so\n$/,
    );

    for (const file of ["env.json", "bundle.json"]) {
      const r = await stella("attest", "verify", "--json", "--key", p("b.pub"), "--key", p("a.pub"), p(file));
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), {
        verified: true,
        file: p(file),
        format: file === "env.json" ? "dsse" : "bundle",
        payloadType: "application/vnd.in-toto+json",
        statementType: "https://in-toto.io/Statement/v1",
        predicateType: PT,
        subjects: [
          { name: "app", digest: { sha256: sha256("the app binary") } },
          { name: "usr/lib/lib.so", digest: { sha256: sha256("a library") } },
        ],
        verifiedKeyids: [keyidA],
        threshold: 1,
      });
    }
  });

  it("sign prints the canonical envelope on stdout; several --key make several signatures; --threshold 2", async () => {
    const r = await stella(
      "attest",
      "sign",
      "--key",
      p("a.key"),
      "--key",
      p("b.key"),
      "--predicate-type",
      PT,
      "--subject",
      p("app"),
      p("predicate.json"),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.endsWith("}\n"));
    const env = JSON.parse(r.stdout) as { signatures: { keyid: string }[] };
    assert.deepEqual(
      env.signatures.map((s) => s.keyid),
      [keyidA, keyidB],
    );
    writeFileSync(p("two.json"), r.stdout);
    const v = await stella(
      "attest",
      "verify",
      "--threshold",
      "2",
      "--key",
      p("a.pub"),
      "--key",
      p("b.pub"),
      p("two.json"),
    );
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /signed by 2 trusted key\(s\)/);
  });

  describe("verify exits 1 for a signature that does not verify", () => {
    before(async () => {
      const r = await stella(
        "attest",
        "sign",
        "--key",
        p("a.key"),
        "--predicate-type",
        PT,
        "--subject",
        p("app"),
        "--out",
        p("one.json"),
        p("predicate.json"),
      );
      assert.equal(r.code, 0, r.stderr);
    });

    it("wrong key", async () => {
      const r = await stella("attest", "verify", "--key", p("b.pub"), p("one.json"));
      assert.equal(r.code, 1);
      assert.equal(r.stdout, "");
      assert.match(r.stderr, /^stella: DSSE_NO_TRUSTED_KEY: .*one\.json: /);
      const j = await stella("attest", "verify", "--json", "--key", p("b.pub"), p("one.json"));
      assert.equal(j.code, 1);
      const result = JSON.parse(j.stdout) as { verified: boolean; error: { code: string } };
      assert.equal(result.verified, false);
      assert.equal(result.error.code, "DSSE_NO_TRUSTED_KEY");
    });

    it("payload changed by one byte", async () => {
      const env = JSON.parse(readFileSync(p("one.json"), "utf8")) as { payload: string };
      const bytes = Buffer.from(env.payload, "base64");
      bytes[20] = (bytes[20] ?? 0) ^ 1;
      writeFileSync(p("tampered.json"), JSON.stringify({ ...env, payload: bytes.toString("base64") }));
      const r = await stella("attest", "verify", "--key", p("a.pub"), p("tampered.json"));
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^stella: DSSE_SIG_INVALID: /);
    });

    it("threshold 2, one valid signature", async () => {
      const r = await stella(
        "attest",
        "verify",
        "--threshold",
        "2",
        "--key",
        p("a.pub"),
        "--key",
        p("b.pub"),
        p("one.json"),
      );
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^stella: DSSE_THRESHOLD_NOT_MET: /);
    });

    it("a payloadType other than in-toto, unless --payload-type says so", async () => {
      const signer = keySigner(loadPrivateKey(readFileSync(p("a.key")), "a.key"));
      writeFileSync(
        p("plain.json"),
        envelopeToJson(await signEnvelope("text/plain", Buffer.from("hi"), [signer])),
      );
      const r = await stella("attest", "verify", "--key", p("a.pub"), p("plain.json"));
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^stella: DSSE_PAYLOAD_TYPE: /);
      const ok = await stella(
        "attest",
        "verify",
        "--payload-type",
        "text/plain",
        "--key",
        p("a.pub"),
        p("plain.json"),
      );
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /payloadType text\/plain\n$/);
    });
  });

  describe("verify exits 3 for malformed input", () => {
    it("not JSON, bad base64, not an envelope, a missing file", async () => {
      const one = JSON.parse(readFileSync(p("one.json"), "utf8")) as { payload: string };
      const cases: [string, string, RegExp][] = [
        ["notjson.json", "{", /^stella: DSSE_MALFORMED: .*notjson\.json: not JSON/],
        [
          "b64.json",
          JSON.stringify({ ...one, payload: `${one.payload}!` }),
          /^stella: DSSE_BAD_BASE64: .*b64\.json: payload: not valid base64/,
        ],
        ["array.json", "[]", /^stella: DSSE_MALFORMED: /],
        ["nosigs.json", JSON.stringify({ ...one, signatures: [] }), /^stella: DSSE_NO_SIGNATURES: /],
      ];
      for (const [file, text, message] of cases) {
        writeFileSync(p(file), text);
        const r = await stella("attest", "verify", "--key", p("a.pub"), p(file));
        assert.equal(r.code, 3, `${file}: ${r.stderr}`);
        assert.match(r.stderr, message);
      }
      const missing = await stella("attest", "verify", "--key", p("a.pub"), p("nope.json"));
      assert.equal(missing.code, 3);
      assert.match(missing.stderr, /^stella: DSSE_IO: /);
    });

    it("a validly signed payload that is not an in-toto statement", async () => {
      const signer = keySigner(loadPrivateKey(readFileSync(p("a.key")), "a.key"));
      const env = await signEnvelope("application/vnd.in-toto+json", Buffer.from('{"_type":"nope"}'), [
        signer,
      ]);
      writeFileSync(p("notstmt.json"), envelopeToJson(env));
      const r = await stella("attest", "verify", "--key", p("a.pub"), p("notstmt.json"));
      assert.equal(r.code, 3);
      assert.match(r.stderr, /^stella: STATEMENT_TYPE: /);
    });

    it("an unsupported key", async () => {
      const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({
        type: "spki",
        format: "pem",
      });
      writeFileSync(p("rsa.pub"), rsa);
      const r = await stella("attest", "verify", "--key", p("rsa.pub"), p("one.json"));
      assert.equal(r.code, 3);
      assert.match(r.stderr, /^stella: KEY_UNSUPPORTED: .*rsa\.pub: RSA keys are not supported/);
    });
  });

  describe("usage errors exit 2", () => {
    const cases: [string, string[]][] = [
      ["missing --key", ["attest", "verify", "env.json"]],
      ["bad --threshold", ["attest", "verify", "--threshold", "two", "--key", "a.pub", "env.json"]],
      ["zero --threshold", ["attest", "verify", "--threshold", "0", "--key", "a.pub", "env.json"]],
      [
        "threshold above the key count",
        ["attest", "verify", "--threshold", "2", "--key", "a.pub", "one.json"],
      ],
      ["no --subject", ["attest", "sign", "--key", "a.key", "--predicate-type", "t", "predicate.json"]],
      [
        "--subject-name count",
        [
          "attest",
          "sign",
          "--key",
          "a.key",
          "--predicate-type",
          "t",
          "--subject",
          "app",
          "--subject",
          "lib.so",
          "--subject-name",
          "x",
          "predicate.json",
        ],
      ],
      [
        "--bundle with two keys",
        [
          "attest",
          "sign",
          "--key",
          "a.key",
          "--key",
          "b.key",
          "--predicate-type",
          "t",
          "--subject",
          "app",
          "--bundle",
          "x.json",
          "predicate.json",
        ],
      ],
      [
        "missing --predicate-type",
        ["attest", "sign", "--key", "a.key", "--subject", "app", "predicate.json"],
      ],
    ];
    for (const [what, args] of cases) {
      it(what, async () => {
        const fileArgs = args.map((a) => (/\.(json|pub|key)$|^app$|^lib\.so$/.test(a) ? p(a) : a));
        const r = await stella(...fileArgs);
        assert.equal(r.code, 2, `${r.stdout}${r.stderr}`);
        assert.notEqual(r.stderr, "");
      });
    }
  });

  it("sign refuses a predicate that is not a JSON object (exit 3)", async () => {
    writeFileSync(p("list.json"), "[1]");
    const r = await stella(
      "attest",
      "sign",
      "--key",
      p("a.key"),
      "--predicate-type",
      PT,
      "--subject",
      p("app"),
      p("list.json"),
    );
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^stella: ATTEST_PREDICATE: .*list\.json: predicate must be a JSON object/);
  });
});
