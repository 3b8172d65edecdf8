import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { DEFAULT_POLICY } from "../../core/risk/policy.ts";
import { deltaRisk, type ChangedFunction, type ScoreInputs } from "../../core/risk/score.ts";
import type { KnownDelta } from "./decide.ts";
import { DeltaStore, type HotnessLookup } from "./store.ts";

const A = "sha256:" + "a".repeat(64);
const B = "sha256:" + "b".repeat(64);
const C = "sha256:" + "c".repeat(64);

function inputs(changed: ChangedFunction[]): ScoreInputs {
  return {
    provenance: { slsaProvenance: "verified", slsaLevel: 3, dsseValid: true, transparencyLog: "verified" },
    entropy: {
      copiedBytes: 980_000,
      addedBytes: 20_000,
      targetBytes: 1_000_000,
      addedEntropyBitsPerByte: 5.5,
    },
    deps: { added: 0, removed: 0, changed: 0 },
    attestation: { signatures: 1, trustedSignatures: 1, newestSignatureAgeDays: 1, keyAgeDays: 30 },
    functions: {
      added: changed.filter((f) => f.change === "added").length,
      removed: changed.filter((f) => f.change === "removed").length,
      modified: changed.filter((f) => f.change === "modified").length,
      changed,
    },
  };
}

const PARSE: ScoreInputs = inputs([
  { symbol: "parse_hdr", change: "modified" },
  { symbol: "log_line", change: "modified" },
]);
const LOGGING: ScoreInputs = inputs([{ symbol: "log_line", change: "modified" }]);

function known(ref: string, base: string, target: string, scoreInputs?: ScoreInputs): KnownDelta {
  return {
    ref,
    baseDigest: base,
    targetDigest: target,
    signatures: 1,
    verifiedKeyids: ["k1"],
    ...(scoreInputs ? { scoreInputs } : {}),
  };
}

/** `si` with the hotness of the named symbols set by hand (what the store should score). */
function hot(si: ScoreInputs, by: Record<string, number>): ScoreInputs {
  return {
    ...si,
    functions: {
      ...si.functions,
      changed: si.functions.changed.map((fn) => {
        const h = by[fn.symbol];
        return h === undefined ? fn : { ...fn, hotness: h };
      }),
    },
  };
}

const score = (si: ScoreInputs): number => deltaRisk(si, DEFAULT_POLICY).score;

describe("DeltaStore lookups", () => {
  test("forward and rollback attestations are looked up separately", () => {
    const store = new DeltaStore({ policy: DEFAULT_POLICY });
    const fwd = known("fwd-ab", A, B, PARSE);
    const rb = known("rb-ba", B, A);
    store.set(fwd, false);
    store.set(rb, true);
    assert.equal(store.size, 2);
    assert.equal(store.forward(A, B), fwd);
    assert.equal(store.rollback(B, A), rb);
    assert.equal(store.rollback(A, B), undefined, "a forward is not a rollback");
    assert.equal(store.forward(B, A), undefined, "a rollback is not a forward");
    // A rollback with the same digests as a forward does not hide it.
    const odd = known("rb-ab", A, B);
    store.set(odd, true);
    assert.equal(store.forward(A, B), fwd);
    assert.equal(store.rollback(A, B), odd);
    assert.equal(store.get("fwd-ab"), fwd);
    assert.equal(store.get("nope"), undefined);
  });

  test("delete removes the entry and its lookup; unknown names are ignored", () => {
    const store = new DeltaStore({ policy: DEFAULT_POLICY });
    store.set(known("fwd-ab", A, B, PARSE), false);
    store.set(known("rb-ba", B, A), true);
    store.delete("fwd-ab");
    assert.equal(store.size, 1);
    assert.equal(store.get("fwd-ab"), undefined);
    assert.equal(store.forward(A, B), undefined);
    store.delete("rb-ba");
    assert.equal(store.rollback(B, A), undefined);
    assert.equal(store.size, 0);
    store.delete("never-there");
    assert.equal(store.size, 0);
  });

  test("replacing an entry by name with other digests drops the old pair", () => {
    const store = new DeltaStore({ policy: DEFAULT_POLICY });
    store.set(known("d", A, B, PARSE), false);
    const moved = known("d", A, C, PARSE);
    store.set(moved, false);
    assert.equal(store.size, 1);
    assert.equal(store.forward(A, B), undefined);
    assert.equal(store.forward(A, C), moved);
    assert.equal(store.get("d"), moved);
    // Turned into a rollback under the same name: no longer a forward.
    const asRollback = known("d", C, A);
    store.set(asRollback, true);
    assert.equal(store.forward(A, C), undefined);
    assert.equal(store.rollback(C, A), asRollback);
  });

  test("deleting an entry whose pair another name has taken over leaves that name's lookup", () => {
    const store = new DeltaStore({ policy: DEFAULT_POLICY });
    store.set(known("old", A, B, PARSE), false);
    const newer = known("new", A, B, LOGGING);
    store.set(newer, false);
    assert.equal(store.forward(A, B), newer, "the latest set wins the pair");
    store.delete("old");
    assert.equal(store.forward(A, B), newer);
  });
});

describe("DeltaStore risk", () => {
  test("without hotness: deltaRisk of the signed score inputs; none without inputs", () => {
    const store = new DeltaStore({ policy: DEFAULT_POLICY });
    const d = known("d", A, B, PARSE);
    store.set(d, false);
    assert.deepEqual(store.risk(d), deltaRisk(PARSE, DEFAULT_POLICY));
    const bare = known("bare", B, C);
    store.set(bare, false);
    assert.equal(store.risk(bare), undefined);
    // Another policy gives another score: the store scores under its own policy.
    const strict = {
      ...DEFAULT_POLICY,
      weights: { ...DEFAULT_POLICY.weights, function_change_impact: 2 },
    };
    const other = new DeltaStore({ policy: strict });
    other.set(d, false);
    assert.deepEqual(other.risk(d), deltaRisk(PARSE, strict));
    assert.notEqual(other.risk(d)?.score, store.risk(d)?.score);
  });

  test("with a hotness lookup: a hot changed function in the base image raises the risk", () => {
    const seen: [string, string][] = [];
    const lookup: HotnessLookup = (image, symbol) => {
      seen.push([image, symbol]);
      return image === A && symbol === "parse_hdr" ? 0.4 : 0;
    };
    const store = new DeltaStore({ policy: DEFAULT_POLICY, hotness: lookup });
    const d = known("d", A, B, PARSE);
    store.set(d, false);
    const risk = store.risk(d);
    assert.ok(risk);
    assert.equal(risk.score, score(hot(PARSE, { parse_hdr: 0.4, log_line: 0 })));
    assert.ok(risk.score > score(PARSE), `${risk.score} > ${score(PARSE)}`);
    assert.deepEqual(
      seen.sort(),
      [
        [A, "log_line"],
        [A, "parse_hdr"],
      ],
      "asks about the changed functions in the base image only",
    );
    // Cached: risk() does not ask again.
    seen.length = 0;
    store.risk(d);
    assert.deepEqual(seen, []);
  });

  test("refreshHotness re-scores and returns exactly the deltas whose score changed", () => {
    const store = new DeltaStore({ policy: DEFAULT_POLICY });
    const parse = known("parse", A, B, PARSE); // changes parse_hdr (hot below) in A
    const logging = known("logging", A, C, LOGGING); // changes only log_line (cold) in A
    const elsewhere = known("elsewhere", C, B, PARSE); // base C: no samples
    const rollback = known("rb", B, A);
    store.set(parse, false);
    store.set(logging, false);
    store.set(elsewhere, false);
    store.set(rollback, true);
    const before = store.risk(parse)?.score;
    assert.equal(before, score(PARSE));

    const lookup: HotnessLookup = (image, symbol) =>
      image === A ? (symbol === "parse_hdr" ? 0.5 : 0) : undefined;
    assert.deepEqual(store.refreshHotness(lookup), ["parse"]);
    assert.equal(store.risk(parse)?.score, score(hot(PARSE, { parse_hdr: 0.5 })));
    assert.ok((store.risk(parse)?.score ?? 0) > score(PARSE));
    assert.equal(store.risk(logging)?.score, score(LOGGING));
    assert.equal(store.risk(elsewhere)?.score, score(PARSE));

    assert.deepEqual(store.refreshHotness(lookup), [], "nothing changed since");
    assert.deepEqual(store.refreshHotness(), [], "the same lookup kept");

    // log_line turns hot in A: both deltas changing it move; parse_hdr cools down.
    const next: HotnessLookup = (image, symbol) =>
      image === A ? (symbol === "log_line" ? 1 : 0) : undefined;
    assert.deepEqual(store.refreshHotness(next), ["logging", "parse"]);
    assert.equal(store.risk(parse)?.score, score(hot(PARSE, { log_line: 1, parse_hdr: 0 })));
    assert.equal(store.risk(logging)?.score, score(hot(LOGGING, { log_line: 1 })));

    // Deltas set after a lookup is in place are scored with it at once.
    const late = known("late", A, B, LOGGING);
    store.set(late, false);
    assert.equal(store.risk(late)?.score, score(hot(LOGGING, { log_line: 1 })));
  });

  test("a KnownDelta object not from the store is scored from its own inputs", () => {
    const store = new DeltaStore({
      policy: DEFAULT_POLICY,
      hotness: (image, symbol) => (image === A && symbol === "parse_hdr" ? 1 : 0),
    });
    const stored = known("d", A, B, PARSE);
    store.set(stored, false);
    // Same name, another object (e.g. an older copy): not the cached score.
    const copy = known("d", A, B, LOGGING);
    assert.deepEqual(store.risk(copy), deltaRisk(LOGGING, DEFAULT_POLICY));
    const stranger = known("stranger", B, C, PARSE);
    assert.deepEqual(store.risk(stranger), deltaRisk(PARSE, DEFAULT_POLICY));
    assert.equal(store.risk(known("none", B, C)), undefined);
  });
});

describe("DeltaStore: several resources for one pair", () => {
  test("deleting one keeps the other; a usable one wins over an invalid one, more verifying keys over fewer", () => {
    const store = new DeltaStore({ policy: DEFAULT_POLICY });
    const old = known("old", A, B, PARSE);
    const resigned = { ...known("resigned", A, B, PARSE), verifiedKeyids: ["k1", "k2"] };
    const tampered = {
      ...known("a-tampered", A, B, PARSE),
      verifiedKeyids: [],
      invalid: "changed after signing",
    };
    store.set(old, false);
    store.set(tampered, false);
    assert.equal(store.forward(A, B)?.ref, "old", "usable before invalid, whatever the name order");
    store.set(resigned, false);
    assert.equal(store.forward(A, B)?.ref, "resigned", "two verifying keys before one");
    store.delete("resigned");
    assert.equal(store.forward(A, B)?.ref, "old", "the other resource for the pair is still found");
    store.delete("old");
    assert.equal(store.forward(A, B)?.ref, "a-tampered", "an invalid one is still reported (it denies)");
    store.delete("a-tampered");
    assert.equal(store.forward(A, B), undefined);
    assert.equal(store.size, 0);
  });
});
