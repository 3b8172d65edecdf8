/**
 * checkDeltaAttestation on real inputs: two small C programs built by gcc (the target differs in one function's
 * body), keys from `stella keygen`, and the DeltaAttestation resources `stella delta create --sign --emit-cr
 * --rollback` writes. Each case edits a parsed resource the way a user or an attacker could.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { parseAllDocuments } from "yaml";

import { loadPublicKeyFile, type PublicKey } from "../../core/dsse/keys.ts";
import type { DeltaAttestationSpec } from "../api/generated/deltaattestation.ts";
import { checkDeltaAttestation, type DeltaCheck, type ForwardView } from "./deltaattestation-verify.ts";

const STELLA = join(import.meta.dirname, "..", "..", "cli", "stella.ts");

interface Cr {
  metadata: { name: string };
  spec: DeltaAttestationSpec;
}

let dir: string;
const p = (...names: string[]): string => join(dir, ...names);

function stella(...args: string[]): string {
  return execFileSync(process.execPath, [STELLA, ...args], {
    cwd: dir,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** The keyid as keys.ts documents it, computed by openssl: sha256 of the DER SubjectPublicKeyInfo. */
function opensslKeyid(pub: string): string {
  const der = execFileSync("openssl", ["pkey", "-pubin", "-in", pub, "-outform", "DER"]);
  return createHash("sha256").update(der).digest("hex");
}

function resources(file: string): [Cr, Cr] {
  const docs = parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS() as Cr);
  assert.equal(docs.length, 2, `${file}: the forward delta, then its rollback`);
  const [fwd, rb] = docs as [Cr, Cr];
  assert.equal(fwd.spec.rollbackOf, undefined);
  assert.equal(rb.spec.rollbackOf?.name, fwd.metadata.name);
  return [fwd, rb];
}

const C_SOURCE = `#include <stdio.h>
#include <stdlib.h>
__attribute__((noinline)) int compute(int x) { return x * KVAL + 1; }
__attribute__((noinline)) int other(int x) { return x ^ 0x55; }
int main(int argc, char **argv) {
  int x = argc > 1 ? atoi(argv[1]) : 3;
  printf("%d %d\\n", compute(x), other(x));
  return 0;
}
`;

let k1: PublicKey; // ed25519, signs everything
let k2: PublicKey; // ecdsa-p256, signs only the doubly signed delta
let k1id: string;
let k2id: string;
/** base → target, signed by k1, and its rollback. */
let fwd: Cr;
let rb: Cr;
/** base → other (a different target), signed by k1, and its rollback. */
let fwd2: Cr;
let rb2: Cr;
/** base → target signed by k1 and k2. */
let both: Cr;
let manifest: { score_inputs: unknown; functions_changed: { modified: number } };
let manifestDigest: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "stella-da-verify-"));
  writeFileSync(p("prog.c"), C_SOURCE);
  for (const [out, k] of [
    ["base", 5],
    ["target", 9],
    ["other", 13],
  ] as const) {
    execFileSync("gcc", ["-O1", `-DKVAL=${k}`, "-o", p(out), p("prog.c")]);
  }
  stella("keygen", "--type", "ed25519", "--out", p("k1"));
  stella("keygen", "--type", "ecdsa-p256", "--out", p("k2"));
  k1 = loadPublicKeyFile(p("k1.pub"));
  k2 = loadPublicKeyFile(p("k2.pub"));
  k1id = opensslKeyid(p("k1.pub"));
  k2id = opensslKeyid(p("k2.pub"));
  const create = (target: string, out: string, cr: string, ...sign: string[]): void => {
    stella(
      "delta",
      "create",
      "--base",
      p("base"),
      "--target",
      p(target),
      "--out",
      p(out),
      ...sign.flatMap((k) => ["--sign", p(k)]),
      "--emit-cr",
      p(cr),
      "--rollback",
    );
  };
  create("target", "d1", "cr1.yaml", "k1.key");
  create("other", "d2", "cr2.yaml", "k1.key");
  create("target", "d3", "cr3.yaml", "k1.key", "k2.key");
  [fwd, rb] = resources(p("cr1.yaml"));
  [fwd2, rb2] = resources(p("cr2.yaml"));
  [both] = resources(p("cr3.yaml"));
  const bytes = readFileSync(p("d1", "delta-manifest.json"));
  manifest = JSON.parse(bytes.toString("utf8")) as typeof manifest;
  manifestDigest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const noForward = (): ForwardView | undefined => undefined;

function check(cr: Cr, keys: readonly PublicKey[], forwards: Cr[] = []): DeltaCheck {
  // Forwards are checked as the controller does, with the same keys.
  const views = new Map(
    forwards.map((f) => [
      f.metadata.name,
      { check: checkDeltaAttestation(f.metadata.name, f.spec, keys, noForward), spec: f.spec },
    ]),
  );
  return checkDeltaAttestation(cr.metadata.name, cr.spec, keys, (name) => views.get(name));
}

/** A copy of `cr` with its spec edited. */
function edited(cr: Cr, edit: (spec: DeltaAttestationSpec) => void): Cr {
  const copy = structuredClone(cr);
  edit(copy.spec);
  return copy;
}

function decodePayload(spec: DeltaAttestationSpec): string {
  return Buffer.from(spec.envelope.payload, "base64").toString("utf8");
}

describe("checkDeltaAttestation: forward deltas", () => {
  test("the keys' ids are what openssl computes", () => {
    assert.match(k1id, /^[0-9a-f]{64}$/);
    assert.notEqual(k1id, k2id);
    assert.equal(k1.keyid, k1id);
    assert.equal(k2.keyid, k2id);
  });

  test("as written by stella delta create: Verified by the signing key, scored from the signed manifest", () => {
    const c = check(fwd, [k2, k1]);
    assert.equal(c.status, "True", c.message);
    assert.equal(c.reason, "Verified");
    assert.deepEqual(c.known.verifiedKeyids, [k1id]);
    assert.equal(c.known.signatures, 1);
    assert.equal(c.known.invalid, undefined);
    assert.equal(c.known.ref, fwd.metadata.name);
    assert.equal(c.known.baseDigest, fwd.spec.baseDigest);
    assert.equal(c.known.targetDigest, fwd.spec.targetDigest);
    assert.deepEqual(c.known.scoreInputs, manifest.score_inputs);
    assert.equal(manifest.functions_changed.modified, 1, "gcc built targets that differ in compute()");
    // The digest a rollback binds is the one of DIR/delta-manifest.json.
    assert.equal(c.manifest?.digest, manifestDigest);
  });

  test("signed by two keys: both verify (sorted); knowing only one, only that one", () => {
    assert.equal(both.spec.envelope.signatures.length, 2);
    const c = check(both, [k1, k2]);
    assert.equal(c.reason, "Verified", c.message);
    assert.equal(c.known.signatures, 2);
    assert.deepEqual(c.known.verifiedKeyids, [k1id, k2id].sort());
    assert.deepEqual(check(both, [k2]).known.verifiedKeyids, [k2id]);
  });

  test("no key the operator knows: SignedByUnknownKey, content consistent (not invalid)", () => {
    const c = check(fwd, [k2]);
    assert.equal(c.status, "False");
    assert.equal(c.reason, "SignedByUnknownKey");
    assert.equal(c.known.invalid, undefined);
    assert.deepEqual(c.known.verifiedKeyids, []);
    assert.equal(c.known.signatures, 1);
    assert.deepEqual(c.known.scoreInputs, manifest.score_inputs);
    assert.match(c.message, new RegExp(k1id), "names the signature's keyid");
    const none = check(fwd, []);
    assert.equal(none.reason, "SignedByUnknownKey");
    assert.equal(none.known.invalid, undefined);
  });

  test("one number in the signed payload changed: SignatureInvalid, invalid", () => {
    const text = decodePayload(fwd.spec);
    const m = /"target_size":(\d+)/.exec(text);
    assert.ok(m?.[1] !== undefined, "the payload carries target_size");
    const size = Number(m[1]);
    assert.equal(size, readFileSync(p("target")).length);
    const tampered = text.replace(`"target_size":${size}`, `"target_size":${size + 1}`);
    assert.equal(tampered.length, text.length + (String(size + 1).length - String(size).length));
    const cr = edited(fwd, (s) => {
      s.envelope.payload = Buffer.from(tampered, "utf8").toString("base64");
    });
    const c = check(cr, [k1]);
    assert.equal(c.status, "False");
    assert.equal(c.reason, "SignatureInvalid");
    assert.ok(c.known.invalid !== undefined);
    assert.match(c.known.invalid, /signatures\[0\]/);
    assert.deepEqual(c.known.verifiedKeyids, []);
    assert.equal(c.known.scoreInputs, undefined);
  });

  test("one signature that names a known key and fails taints the envelope, even if another verifies", () => {
    const cr = edited(both, (s) => {
      const [first, second] = s.envelope.signatures as [{ keyid: string; sig: string }, { keyid: string }];
      // Swap the signature bytes under the keyids: each now claims the other key's signature.
      s.envelope.signatures = [
        { keyid: first.keyid, sig: first.sig },
        {
          keyid: second.keyid,
          sig: first.sig,
        },
      ];
    });
    const c = check(cr, [k1, k2]);
    assert.equal(c.reason, "SignatureInvalid", c.message);
    assert.ok(c.known.invalid !== undefined);
    assert.deepEqual(c.known.verifiedKeyids, []);
  });

  test("a signature without a keyid is tried against every key", () => {
    const cr = edited(fwd, (s) => {
      s.envelope.signatures = s.envelope.signatures.map((g) => ({ ...g, keyid: "" }));
    });
    const c = check(cr, [k2, k1]);
    assert.equal(c.reason, "Verified", c.message);
    assert.deepEqual(c.known.verifiedKeyids, [k1id]);
  });

  for (const [field, edit] of [
    [
      "manifest.addBytes",
      (s: DeltaAttestationSpec) => {
        s.manifest.addBytes += 1;
      },
    ],
    [
      "targetDigest",
      (s: DeltaAttestationSpec) => {
        s.targetDigest = fwd2.spec.targetDigest;
      },
    ],
    [
      "scoreInputs.addedBytes",
      (s: DeltaAttestationSpec) => {
        s.scoreInputs = { ...s.scoreInputs, addedBytes: 0 };
      },
    ],
    [
      "functionsChanged.names[0]",
      (s: DeltaAttestationSpec) => {
        s.functionsChanged = { added: 0, removed: 0, modified: 1, names: ["other"] };
      },
    ],
  ] as const) {
    test(`spec.${field} edited after signing: SpecMismatch naming it`, () => {
      const c = check(edited(fwd, edit), [k1]);
      assert.equal(c.status, "False");
      assert.equal(c.reason, "SpecMismatch", c.message);
      assert.ok(c.message.startsWith(`spec.${field} `), c.message);
      assert.equal(c.known.invalid, c.message);
      assert.deepEqual(c.known.verifiedKeyids, []);
    });
  }

  test("an added spec field the manifest does not give is a mismatch too", () => {
    const c = check(
      edited(fwd, (s) => {
        s.materialsDelta = { ...s.materialsDelta, added: [{ name: "libevil", version: "1" }] };
      }),
      [k1],
    );
    assert.equal(c.reason, "SpecMismatch");
    assert.match(c.message, /^spec\.materialsDelta\.added\[0\]/);
  });

  test("a rollback envelope on a forward spec (no rollbackOf): WrongPredicateType", () => {
    const c = check(
      edited(fwd, (s) => {
        s.envelope = rb.spec.envelope;
      }),
      [k1],
    );
    assert.equal(c.status, "False");
    assert.equal(c.reason, "WrongPredicateType");
    assert.match(c.message, /stellaops\.delta-rollback\.v1/);
    assert.ok(c.known.invalid !== undefined);
  });

  test("malformed envelopes: MalformedEnvelope naming the field", () => {
    const cases: [string, (s: DeltaAttestationSpec) => void, RegExp][] = [
      [
        "payload not base64",
        (s) => {
          s.envelope.payload = `${s.envelope.payload.slice(0, 40)}!${s.envelope.payload.slice(41)}`;
        },
        /payload: not valid base64/,
      ],
      [
        "payload not JSON",
        (s) => {
          s.envelope.payload = Buffer.from("{not json", "utf8").toString("base64");
        },
        /payload: not a JSON document/,
      ],
      [
        "payload not an in-toto statement",
        (s) => {
          s.envelope.payload = Buffer.from('{"hello":1}', "utf8").toString("base64");
        },
        /payload\._type/,
      ],
      [
        "signature not base64",
        (s) => {
          s.envelope.signatures = s.envelope.signatures.map((g) => ({ ...g, sig: "***" }));
        },
        /signatures\[0\]\.sig: not valid base64/,
      ],
      [
        "other payloadType",
        (s) => {
          s.envelope.payloadType = "text/plain";
        },
        /payloadType text\/plain/,
      ],
      [
        "no signatures",
        (s) => {
          s.envelope.signatures = [];
        },
        /signatures/,
      ],
    ];
    for (const [what, edit, field] of cases) {
      const c = check(edited(fwd, edit), [k1]);
      assert.equal(c.status, "False", what);
      assert.equal(c.reason, "MalformedEnvelope", `${what}: ${c.message}`);
      assert.match(c.message, field, what);
      assert.ok(c.message.includes(`DeltaAttestation ${fwd.metadata.name} spec.envelope`), c.message);
      assert.equal(c.known.invalid, c.message, what);
    }
  });
});

describe("checkDeltaAttestation: rollbacks", () => {
  test("as written by stella delta create --rollback: Verified, bound to its forward", () => {
    const c = check(rb, [k1], [fwd]);
    assert.equal(c.status, "True", c.message);
    assert.equal(c.reason, "Verified");
    assert.deepEqual(c.known.verifiedKeyids, [k1id]);
    assert.equal(c.known.invalid, undefined);
    assert.equal(c.known.scoreInputs, undefined, "a rollback is not scored");
    assert.deepEqual(
      [c.known.baseDigest, c.known.targetDigest],
      [fwd.spec.targetDigest, fwd.spec.baseDigest],
    );
    // The other pair's rollback is valid against its own forward.
    assert.equal(check(rb2, [k1], [fwd2]).reason, "Verified");
  });

  test("signed by no known key: SignedByUnknownKey, not invalid", () => {
    // The forward is resolved under k1 (its own check must pass); the rollback is checked with k2 only.
    const view = {
      check: checkDeltaAttestation(fwd.metadata.name, fwd.spec, [k1], noForward),
      spec: fwd.spec,
    };
    const c = checkDeltaAttestation(rb.metadata.name, rb.spec, [k2], (n) =>
      n === fwd.metadata.name ? view : undefined,
    );
    assert.equal(c.reason, "SignedByUnknownKey", c.message);
    assert.equal(c.known.invalid, undefined);
  });

  test("rollbackOf names a missing resource: Unknown/RollbackOfMissing, invalid", () => {
    const c = check(rb, [k1], []);
    assert.equal(c.status, "Unknown");
    assert.equal(c.reason, "RollbackOfMissing");
    assert.ok(c.known.invalid !== undefined);
    assert.match(c.message, new RegExp(`^spec\\.rollbackOf\\.name: DeltaAttestation ${fwd.metadata.name}: `));
    assert.match(c.message, /does not exist/);
  });

  test("rollbackOf names an invalid forward: Unknown/RollbackOfMissing", () => {
    const broken = edited(fwd, (s) => {
      s.manifest.opsAdd += 1;
    });
    const c = check(rb, [k1], [broken]);
    assert.equal(c.status, "Unknown");
    assert.equal(c.reason, "RollbackOfMissing");
    assert.match(c.message, /not valid/);
    assert.ok(c.known.invalid !== undefined);
  });

  test("rollbackOf names a different forward delta: RollbackMismatch", () => {
    const cr = edited(rb, (s) => {
      s.rollbackOf = { name: fwd2.metadata.name };
    });
    const c = check(cr, [k1], [fwd, fwd2]);
    assert.equal(c.status, "False");
    assert.equal(c.reason, "RollbackMismatch", c.message);
    assert.ok(c.known.invalid !== undefined);
    assert.match(c.message, /manifest_digest/);
    assert.match(c.message, /from\/to/);
    assert.match(c.message, /spec\.baseDigest\/targetDigest/);

    // Even with the spec's digests edited to reverse the other forward's, the signed predicate does not.
    const respelled = edited(cr, (s) => {
      s.baseDigest = fwd2.spec.targetDigest;
      s.targetDigest = fwd2.spec.baseDigest;
    });
    const r = check(respelled, [k1], [fwd, fwd2]);
    assert.equal(r.reason, "RollbackMismatch");
    assert.doesNotMatch(r.message, /spec\.baseDigest/);
    assert.match(r.message, /manifest_digest/);
  });

  test("the right forward but the spec's digests not reversed: RollbackMismatch", () => {
    const c = check(
      edited(rb, (s) => {
        s.targetDigest = fwd2.spec.targetDigest;
      }),
      [k1],
      [fwd],
    );
    assert.equal(c.reason, "RollbackMismatch");
    assert.match(c.message, /^spec\.baseDigest\/targetDigest/);
  });

  test("a forward envelope on a rollback spec: WrongPredicateType", () => {
    const c = check(
      edited(rb, (s) => {
        s.envelope = fwd.spec.envelope;
      }),
      [k1],
      [fwd],
    );
    assert.equal(c.reason, "WrongPredicateType");
    assert.match(c.message, /stellaops\.delta\.v1/);
    assert.ok(c.known.invalid !== undefined);
  });
});
