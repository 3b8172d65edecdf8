/* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment -- client-node models are plain data */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import type { V1Secret } from "@kubernetes/client-node";

import { generateKeyPair, loadPublicKeyFile, type PublicKey } from "../../core/dsse/keys.ts";
import type { SecretKeyRef } from "../api/generated/common.ts";
import { resolveKeyRefs } from "./gate-keys.ts";

const NS = "stella-system";

let dir: string;
/** PEM text of two public keys, and the keys as loadPublicKeyFile reads their .pub files. */
let edPem: string;
let ecPem: string;
let ed: PublicKey;
let ec: PublicKey;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "stella-gate-keys-"));
  const pairs = { ed: generateKeyPair("ed25519"), ec: generateKeyPair("ecdsa-p256") };
  for (const [name, pair] of Object.entries(pairs)) writeFileSync(join(dir, `${name}.pub`), pair.publicPem);
  edPem = readFileSync(join(dir, "ed.pub"), "utf8");
  ecPem = readFileSync(join(dir, "ec.pub"), "utf8");
  ed = loadPublicKeyFile(join(dir, "ed.pub"));
  ec = loadPublicKeyFile(join(dir, "ec.pub"));
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");

/** Secrets by "namespace/name", each entry's value PEM text (base64-encoded as the API returns it). */
function secrets(all: Record<string, Record<string, string>>): {
  lookup: (key: string) => V1Secret | undefined;
  asked: string[];
} {
  const asked: string[] = [];
  return {
    asked,
    lookup: (key) => {
      asked.push(key);
      const data = all[key];
      if (data === undefined) return undefined;
      const [namespace, name] = key.split("/");
      return {
        metadata: { namespace, name },
        data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
      };
    },
  };
}

const ref = (name: string, key?: string, namespace = NS): { secretRef: SecretKeyRef } => ({
  secretRef: { namespace, name, ...(key === undefined ? {} : { key }) },
});

test("a Secret in another namespace is refused, naming both namespaces, and never read", () => {
  const s = secrets({ "team-a/keys": { "release.pub": edPem } });
  const r = resolveKeyRefs([ref("keys", "release.pub", "team-a")], NS, s.lookup);
  assert.deepEqual(r.keys, []);
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0] ?? "", /^spec\.trustedKeys\[0\]\.secretRef \(team-a\/keys:release\.pub\)/);
  assert.match(r.problems[0] ?? "", new RegExp(`only in its namespace ${NS}`));
  assert.deepEqual(s.asked, [], "the other namespace's Secret was not looked up");
});

test("a missing Secret is a problem naming the reference", () => {
  const r = resolveKeyRefs([ref("gone")], NS, secrets({}).lookup);
  assert.deepEqual(r.keys, []);
  assert.deepEqual(r.problems.length, 1);
  assert.match(r.problems[0] ?? "", new RegExp(`\\(${NS}/gone\\): Secret not found`));
});

test("key omitted: the only entry is the key; with two entries it is a problem", () => {
  const s = secrets({ [`${NS}/one`]: { "any-name.pem": edPem }, [`${NS}/two`]: { a: edPem, b: ecPem } });
  const one = resolveKeyRefs([ref("one")], NS, s.lookup);
  assert.deepEqual(one.problems, []);
  assert.deepEqual(
    one.keys.map((k) => k.keyid),
    [ed.keyid],
  );
  const two = resolveKeyRefs([ref("two")], NS, s.lookup);
  assert.deepEqual(two.keys, []);
  assert.equal(two.problems.length, 1);
  assert.match(two.problems[0] ?? "", /no key given and the Secret holds 2 entries/);
  // Naming one of the two picks it.
  const named = resolveKeyRefs([ref("two", "b")], NS, s.lookup);
  assert.deepEqual(named.problems, []);
  assert.deepEqual(
    named.keys.map((k) => k.keyid),
    [ec.keyid],
  );
});

test("a named key the Secret does not hold is a problem", () => {
  const s = secrets({ [`${NS}/keys`]: { "release.pub": edPem } });
  const r = resolveKeyRefs([ref("keys", "old.pub")], NS, s.lookup);
  assert.deepEqual(r.keys, []);
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0] ?? "", /the Secret has no entry old\.pub/);
});

test("a bad PEM is a problem, not a throw; the other references still resolve", () => {
  const s = secrets({
    [`${NS}/bad`]: { "x.pub": "hello, not a key" },
    // The PEM armour around a truncated SubjectPublicKeyInfo.
    [`${NS}/broken`]: { "y.pub": edPem.replace(/\n([A-Za-z0-9+/=]{20})[A-Za-z0-9+/=]+\n/, "\n$1\n") },
    [`${NS}/good`]: { "release.pub": ecPem, "junk.pub": "junk" },
  });
  const r = resolveKeyRefs([ref("bad"), ref("broken"), ref("good", "release.pub")], NS, s.lookup);
  assert.deepEqual(
    r.keys.map((k) => k.keyid),
    [ec.keyid],
    "the named good entry resolves; the unnamed junk beside it is not read",
  );
  assert.equal(r.problems.length, 2, r.problems.join("\n"));
  assert.match(r.problems[0] ?? "", /^spec\.trustedKeys\[0\]\.secretRef .*not a PEM key/);
  assert.match(r.problems[1] ?? "", /^spec\.trustedKeys\[1\]\.secretRef .*cannot parse public key/);
});

test("two references to the same key give one key; distinct keys are all kept", () => {
  const s = secrets({
    [`${NS}/a`]: { "release.pub": edPem },
    [`${NS}/b`]: { "copy.pub": edPem, "ec.pub": ecPem },
  });
  const r = resolveKeyRefs([ref("a"), ref("b", "copy.pub"), ref("a", "release.pub")], NS, s.lookup);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(
    r.keys.map((k) => k.keyid),
    [ed.keyid],
  );
  const both = resolveKeyRefs([ref("a"), ref("b", "ec.pub")], NS, s.lookup);
  assert.deepEqual(both.keys.map((k) => k.keyid).sort(), [ed.keyid, ec.keyid].sort());
  assert.deepEqual(resolveKeyRefs([], NS, s.lookup), { keys: [], problems: [] });
});

test("a resolved key is the key loadPublicKeyFile reads from the same .pub", () => {
  const s = secrets({ [`${NS}/keys`]: { "ed.pub": edPem, "ec.pub": ecPem } });
  for (const [name, want] of [
    ["ed.pub", ed],
    ["ec.pub", ec],
  ] as const) {
    const r = resolveKeyRefs([ref("keys", name)], NS, s.lookup);
    assert.equal(r.keys.length, 1);
    const [got] = r.keys as [PublicKey];
    assert.equal(got.keyid, want.keyid);
    assert.equal(got.type, want.type);
    assert.ok(got.key.equals(want.key), "the same public key");
  }
  assert.equal(ed.type, "ed25519");
  assert.equal(ec.type, "ecdsa-p256");
});
