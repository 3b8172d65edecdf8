import assert from "node:assert/strict";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { KEY_TYPES, loadPrivateKeyFile, loadPublicKeyFile } from "../../core/dsse/keys.ts";
import { runStella, tempDir } from "../../core/dsse/testdata/oracles.ts";
import type { RunResult } from "../../core/testing/run.ts";

/** `stella …args` in a child process (see runStella). */
function stella(...args: string[]): Promise<RunResult> {
  return runStella(args);
}

describe("stella keygen", () => {
  let dir = "";
  let cleanup = (): void => undefined;
  before(() => ({ dir, cleanup } = tempDir("stella-keygen-")));
  after(() => {
    cleanup();
  });

  for (const type of KEY_TYPES) {
    it(`--type ${type}: PREFIX.key (0600) and PREFIX.pub, keyid on stdout`, async () => {
      const prefix = join(dir, type);
      const r = await stella("keygen", "--type", type, "--out", prefix);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^[0-9a-f]{64}\n$/);
      const keyid = r.stdout.trim();
      assert.equal(statSync(`${prefix}.key`).mode & 0o777, 0o600);
      const priv = loadPrivateKeyFile(`${prefix}.key`);
      assert.equal(priv.type, type);
      assert.equal(priv.publicKey.keyid, keyid);
      assert.equal(loadPublicKeyFile(`${prefix}.pub`).keyid, keyid);
      assert.match(readFileSync(`${prefix}.key`, "utf8"), /^-----BEGIN PRIVATE KEY-----/);
      assert.match(readFileSync(`${prefix}.pub`, "utf8"), /^-----BEGIN PUBLIC KEY-----/);
    });
  }

  it("defaults to ecdsa-p256; --json", async () => {
    const prefix = join(dir, "default");
    const r = await stella("keygen", "--out", prefix, "--json");
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as {
      type: string;
      keyid: string;
      privateKey: string;
      publicKey: string;
    };
    assert.deepEqual(result, {
      type: "ecdsa-p256",
      keyid: loadPublicKeyFile(`${prefix}.pub`).keyid,
      privateKey: `${prefix}.key`,
      publicKey: `${prefix}.pub`,
    });
  });

  it("refuses to overwrite (exit 3) unless --force, which replaces with a fresh 0600 file", async () => {
    const prefix = join(dir, "again");
    assert.equal((await stella("keygen", "--out", prefix)).code, 0);
    const before = readFileSync(`${prefix}.key`, "utf8");
    const refused = await stella("keygen", "--out", prefix);
    assert.equal(refused.code, 3);
    assert.match(refused.stderr, /^stella: KEY_EXISTS: .*again\.key: already exists/);
    assert.equal(readFileSync(`${prefix}.key`, "utf8"), before);

    chmodSync(`${prefix}.key`, 0o644);
    const forced = await stella("keygen", "--out", prefix, "--force", "--type", "ed25519");
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(readFileSync(`${prefix}.key`, "utf8"), before);
    assert.equal(statSync(`${prefix}.key`).mode & 0o777, 0o600);
    assert.equal(loadPrivateKeyFile(`${prefix}.key`).type, "ed25519");
  });

  it("refuses when only the .pub exists, writing nothing", async () => {
    const prefix = join(dir, "halfway");
    writeFileSync(`${prefix}.pub`, "x");
    assert.equal((await stella("keygen", "--out", prefix)).code, 3);
    assert.equal(existsSync(`${prefix}.key`), false);
  });

  it("an unknown --type is a usage error (exit 2)", async () => {
    const r = await stella("keygen", "--type", "rsa-2048", "--out", join(dir, "rsa"));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ecdsa-p256/);
  });
});
