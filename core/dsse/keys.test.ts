import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import { run } from "../testing/run.ts";
import { isStellaError } from "../errors.ts";
import {
  KEY_TYPES,
  generateKeyPair,
  loadPrivateKey,
  loadPrivateKeyFile,
  loadPublicKey,
  loadPublicKeyFile,
} from "./keys.ts";
import { tempDir } from "./testdata/oracles.ts";

function throwsKey(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isStellaError(err, code), `expected ${code}, got ${String(err)}`);
    assert.match(err.message, message);
    return true;
  });
}

describe("generateKeyPair / load", () => {
  for (const type of KEY_TYPES) {
    it(`${type}: PKCS#8 + SPKI PEM, keyid = SHA-256 of the DER SPKI as OpenSSL writes it`, async () => {
      const pair = generateKeyPair(type);
      assert.match(pair.privatePem, /^-----BEGIN PRIVATE KEY-----\n/);
      assert.match(pair.publicPem, /^-----BEGIN PUBLIC KEY-----\n/);
      assert.match(pair.keyid, /^[0-9a-f]{64}$/);

      const priv = loadPrivateKey(pair.privatePem, "k.key");
      const pub = loadPublicKey(pair.publicPem, "k.pub");
      assert.equal(priv.type, type);
      assert.equal(pub.type, type);
      assert.equal(priv.publicKey.keyid, pair.keyid);
      assert.equal(pub.keyid, pair.keyid);
      // A private key where a public one is expected: the public half is derived.
      assert.equal(loadPublicKey(pair.privatePem, "k.key").keyid, pair.keyid);

      const { dir, cleanup } = tempDir();
      try {
        const pubPath = join(dir, "k.pub");
        const derPath = join(dir, "k.der");
        writeFileSync(pubPath, pair.publicPem);
        const r = await run("openssl", [
          "pkey",
          "-pubin",
          "-in",
          pubPath,
          "-outform",
          "DER",
          "-out",
          derPath,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(createHash("sha256").update(readFileSync(derPath)).digest("hex"), pair.keyid);
      } finally {
        cleanup();
      }
    });
  }

  it("loads keys OpenSSL made: PKCS#8 Ed25519/P-521 and SEC1 'EC PRIVATE KEY' P-384", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const cases: [string, string[], string][] = [
        ["ed.key", ["genpkey", "-algorithm", "ed25519"], "ed25519"],
        ["p521.key", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"], "ecdsa-p521"],
        ["p384.key", ["ecparam", "-name", "secp384r1", "-genkey", "-noout"], "ecdsa-p384"],
      ];
      for (const [file, args, type] of cases) {
        const path = join(dir, file);
        const r = await run("openssl", [...args, "-out", path]);
        assert.equal(r.code, 0, r.stderr);
        const key = loadPrivateKeyFile(path);
        assert.equal(key.type, type);
        const pubPath = join(dir, `${file}.pub`);
        assert.equal((await run("openssl", ["pkey", "-in", path, "-pubout", "-out", pubPath])).code, 0);
        assert.equal(loadPublicKeyFile(pubPath).keyid, key.publicKey.keyid);
      }
      assert.match(readFileSync(join(dir, "p384.key"), "utf8"), /BEGIN EC PRIVATE KEY/);
    } finally {
      cleanup();
    }
  });
});

describe("refusals", () => {
  it("RSA, naming it and the file", () => {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    throwsKey(
      () => loadPrivateKey(pem, "rsa.key"),
      "KEY_UNSUPPORTED",
      /^rsa\.key: RSA keys are not supported/,
    );
    const pub = publicKey.export({ type: "spki", format: "pem" }).toString();
    throwsKey(
      () => loadPublicKey(pub, "rsa.pub"),
      "KEY_UNSUPPORTED",
      /^rsa\.pub: RSA keys are not supported/,
    );
  });

  it("other curves, naming the curve", () => {
    for (const curve of ["secp256k1", "brainpoolP256r1", "prime192v1"]) {
      const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: curve });
      const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
      throwsKey(
        () => loadPrivateKey(pem, "x.key"),
        "KEY_UNSUPPORTED",
        new RegExp(`^x\\.key: EC curve ${curve} is not supported`),
      );
      const pub = publicKey.export({ type: "spki", format: "pem" }).toString();
      throwsKey(() => loadPublicKey(pub, "x.pub"), "KEY_UNSUPPORTED", new RegExp(`EC curve ${curve}`));
    }
  });

  it("Ed448", () => {
    const pem = generateKeyPairSync("ed448").privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    throwsKey(
      () => loadPrivateKey(pem, "ed448.key"),
      "KEY_UNSUPPORTED",
      /^ed448\.key: ED448 keys are not supported/,
    );
  });

  it("encrypted private keys (PKCS#8, legacy PEM, cosign's)", () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const pkcs8 = privateKey
      .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" })
      .toString();
    throwsKey(() => loadPrivateKey(pkcs8, "enc.key"), "KEY_ENCRYPTED", /^enc\.key: encrypted private keys/);
    throwsKey(() => loadPublicKey(pkcs8, "enc.key"), "KEY_ENCRYPTED", /^enc\.key: /);
    const sec1 = privateKey
      .export({ type: "sec1", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" })
      .toString();
    assert.match(sec1, /Proc-Type: 4,ENCRYPTED/);
    throwsKey(() => loadPrivateKey(sec1, "enc.key"), "KEY_ENCRYPTED", /^enc\.key: /);
    const cosign =
      "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJrZGYiOnt9fQ==\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n";
    throwsKey(() => loadPrivateKey(cosign, "cosign.key"), "KEY_ENCRYPTED", /^cosign\.key: /);
  });

  it("not PEM, or a damaged PEM, naming the file", () => {
    throwsKey(() => loadPrivateKey("hello", "k.key"), "KEY_MALFORMED", /^k\.key: not a PEM key/);
    throwsKey(
      () => loadPublicKey(new Uint8Array([0x30, 0x82]), "k.pub"),
      "KEY_MALFORMED",
      /^k\.pub: not a PEM key/,
    );
    const pem = generateKeyPair("ecdsa-p256").publicPem;
    const damaged = pem.replace(/\n[A-Za-z0-9+/]{10}/, "\n");
    throwsKey(() => loadPublicKey(damaged, "k.pub"), "KEY_MALFORMED", /^k\.pub: cannot parse public key/);
  });

  it("a public key where the private key is needed", () => {
    const pair = generateKeyPair("ed25519");
    throwsKey(() => loadPrivateKey(pair.publicPem, "k.pub"), "KEY_NOT_PRIVATE", /^k\.pub: is a public key/);
  });

  it("a missing file", () => {
    throwsKey(
      () => loadPrivateKeyFile("/nonexistent/k.key"),
      "KEY_IO",
      /^\/nonexistent\/k\.key: cannot read key/,
    );
    throwsKey(() => loadPublicKeyFile("/nonexistent/k.pub"), "KEY_IO", /^\/nonexistent\/k\.pub: /);
  });
});
