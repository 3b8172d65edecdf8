import assert from "node:assert/strict";
import { describe, test } from "node:test";

import type { VexStatementSpec, VexStatementStatus, VexTransition } from "../api/generated/vexstatement.ts";
import type { SymbolObservation } from "../index/types.ts";
import {
  decideVexStatement,
  MAX_TRANSITIONS,
  observingSinceMs,
  resolvePolicy,
  rfc3339,
  type DecideInput,
} from "./vexstatement-decide.ts";

const S = 1000;
const NOW = Date.UTC(2024, 4, 1, 14, 0, 0);
const WINDOW_S = 3600;
const QUIET_S = 7200;
const REVISIT_S = 600;
const BUILD_ID = "03d4a1b2c3d4e5f60718293a4b5c6d7e8f901234";

const SPEC: VexStatementSpec = {
  vulnerability: { id: "CVE-2024-1234" },
  product: { imageDigest: `sha256:${"ab".repeat(32)}` },
  symbols: [{ name: "stella_hot" }, { name: "stella_cold" }],
  policy: {
    windowSeconds: WINDOW_S,
    minSamples: 5,
    notAffectedAfterSeconds: QUIET_S,
    revisitSeconds: REVISIT_S,
  },
};

function obs(samples: number, productSamples = 1000): SymbolObservation {
  return {
    samples,
    productSamples,
    buildIds: samples > 0 ? [BUILD_ID] : [],
    pods: samples > 0 ? ["shop/apigw-0"] : [],
    nodes: samples > 0 ? ["node-a"] : [],
    topStacks: samples > 0 ? [{ stack: "stella_hot;handle;main", count: samples }] : [],
    ...(samples > 0 ? { lastSeenMs: NOW - 60 * S } : {}),
  };
}

interface Case {
  hot?: number; // stella_hot samples in the window
  quietHot?: number; // stella_hot samples in the quiet range (default: = hot)
  productSamples?: number; // in both ranges
  present?: boolean; // stella_hot in a FuncProof
  productBuildIds?: string[];
  status?: VexStatementStatus;
  now?: number;
}

function input(c: Case): DecideInput {
  const now = c.now ?? NOW;
  const ps = c.productSamples ?? 1000;
  const hot = c.hot ?? 0;
  return {
    spec: SPEC,
    status: c.status,
    window: {
      sinceMs: now - WINDOW_S * S,
      untilMs: now,
      symbols: { stella_hot: obs(hot, ps) },
      productSamples: ps,
    },
    quiet: {
      sinceMs: now - QUIET_S * S,
      untilMs: now,
      symbols: { stella_hot: obs(c.quietHot ?? hot, ps), stella_cold: obs(0, ps) },
      productSamples: ps,
    },
    presence: { stella_hot: c.present === false ? [] : [BUILD_ID], stella_cold: [] },
    productBuildIds: c.productBuildIds,
    nowMs: now,
  };
}

/** A status whose first decision (under_investigation) was `agoS` seconds before NOW. */
function observing(agoS: number, extra: Partial<VexStatementStatus> = {}): VexStatementStatus {
  return {
    vexStatus: "under_investigation",
    transitions: [{ to: "under_investigation", at: rfc3339(NOW - agoS * S), reason: "AwaitingEvidence" }],
    ...extra,
  };
}

function affectedSince(agoS: number): VexStatementStatus {
  return {
    vexStatus: "affected",
    transitions: [
      { to: "under_investigation", at: rfc3339(NOW - 100_000 * S), reason: "AwaitingEvidence" },
      { from: "under_investigation", to: "affected", at: rfc3339(NOW - agoS * S), reason: "SymbolObserved" },
    ],
  };
}

describe("decideVexStatement", () => {
  const table: { name: string; c: Case; status: string; justification?: string; reason: string }[] = [
    { name: "affected at exactly minSamples", c: { hot: 5 }, status: "affected", reason: "SymbolObserved" },
    {
      name: "not affected at minSamples − 1 (observed, below threshold)",
      c: { hot: 4 },
      status: "under_investigation",
      reason: "BelowThreshold",
    },
    {
      name: "samples only outside the window but inside the quiet range: not affected, not quiet either",
      c: { hot: 0, quietHot: 9, status: observing(QUIET_S + 10) },
      status: "under_investigation",
      reason: "BelowThreshold",
    },
    {
      name: "first decision with no samples: awaiting evidence",
      c: { hot: 0 },
      status: "under_investigation",
      reason: "AwaitingEvidence",
    },
    {
      name: "quiet for notAffectedAfterSeconds − 1 s: still awaiting",
      c: { status: observing(QUIET_S - 1) },
      status: "under_investigation",
      reason: "AwaitingEvidence",
    },
    {
      name: "quiet for exactly notAffectedAfterSeconds while the product ran: not in execute path",
      c: { status: observing(QUIET_S) },
      status: "not_affected",
      justification: "vulnerable_code_not_in_execute_path",
      reason: "NotInExecutePath",
    },
    {
      name: "quiet long enough but the product did not run: no claim",
      c: { productSamples: 0, status: observing(QUIET_S * 2) },
      status: "under_investigation",
      reason: "ProductNotRunning",
    },
    {
      name: "quiet long enough but no FuncProof contains the symbol and the product is unknown",
      c: { present: false, status: observing(QUIET_S * 2) },
      status: "under_investigation",
      reason: "NoFuncProof",
    },
    {
      name: "absent from every FuncProof of the product: not present (no waiting needed)",
      c: { present: false, productBuildIds: [BUILD_ID] },
      status: "not_affected",
      justification: "vulnerable_code_not_present",
      reason: "NotPresent",
    },
    {
      name: "observed wins over a FuncProof that says absent",
      c: { hot: 7, present: false, productBuildIds: [BUILD_ID] },
      status: "affected",
      reason: "SymbolObserved",
    },
    {
      name: "revisit: not_affected flips to affected as soon as observed",
      c: {
        hot: 5,
        status: observing(QUIET_S * 3, {
          vexStatus: "not_affected",
          justification: "vulnerable_code_not_in_execute_path",
        }),
      },
      status: "affected",
      reason: "SymbolObserved",
    },
    {
      name: "affected stays affected while observed (below threshold in the window, but in the quiet range)",
      c: { hot: 1, quietHot: 3, status: affectedSince(QUIET_S * 3) },
      status: "affected",
      reason: "StillObserved",
    },
    {
      name: "affected stays affected when the product stops running",
      c: { productSamples: 0, status: affectedSince(QUIET_S * 3) },
      status: "affected",
      reason: "ProductNotRunning",
    },
    {
      name: "affected stays affected for notAffectedAfterSeconds after it became affected, even if quiet",
      c: { status: affectedSince(QUIET_S - 1) },
      status: "affected",
      reason: "StillObserved",
    },
    {
      name: "back-transition: quiet for notAffectedAfterSeconds while running → under_investigation",
      c: { status: affectedSince(QUIET_S) },
      status: "under_investigation",
      reason: "NoLongerObserved",
    },
  ];
  for (const { name, c, status, justification, reason } of table) {
    test(name, () => {
      const r = decideVexStatement(input(c));
      assert.equal(r.decision.status, status);
      assert.equal(r.decision.justification, justification);
      assert.equal(r.reason, reason);
      assert.equal(r.next.vexStatus, status);
      assert.equal(r.next.justification, justification);
    });
  }

  test("window edges are the query's: [now − windowSeconds, now)", () => {
    const i = input({ hot: 5 });
    assert.equal(i.window.sinceMs, NOW - WINDOW_S * S);
    const r = decideVexStatement(i);
    assert.equal(r.next.evidence?.windowStart, "2024-05-01T13:00:00Z");
    assert.equal(r.next.evidence?.windowEnd, "2024-05-01T14:00:00Z");
  });

  test("affected evidence: samples, permille, stacks, BuildIDs, pods, nodes", () => {
    const r = decideVexStatement(input({ hot: 173, productSamples: 1000 }));
    assert.deepEqual(r.next.evidence, {
      windowStart: "2024-05-01T13:00:00Z",
      windowEnd: "2024-05-01T14:00:00Z",
      samples: 173,
      cpuSharePermille: 173,
      buildIds: [BUILD_ID],
      pods: ["shop/apigw-0"],
      nodes: ["node-a"],
      topStacks: ["stella_hot;handle;main"],
    });
    assert.deepEqual(r.decision.evidence.observedSymbols, [{ name: "stella_hot", samples: 173 }]);
  });

  test("a change appends a transition; no change appends nothing", () => {
    const first = decideVexStatement(input({ hot: 5 }));
    assert.equal(first.changed, true);
    assert.deepEqual(first.next.transitions, [
      { to: "affected", at: rfc3339(NOW), reason: "SymbolObserved" },
    ]);
    const again = decideVexStatement(input({ hot: 9, status: { ...first.next } }));
    assert.equal(again.changed, false);
    assert.equal(again.reason, "StillObserved");
    assert.deepEqual(again.next.transitions, first.next.transitions);
  });

  test("transitions are capped at 32, oldest dropped", () => {
    const transitions = Array.from({ length: MAX_TRANSITIONS }, (_, i): VexTransition => ({
      to: i % 2 === 0 ? "under_investigation" : "affected",
      at: rfc3339(NOW - (100 - i) * 3600 * S),
      reason: "AwaitingEvidence",
    }));
    const status: VexStatementStatus = { vexStatus: "affected", transitions };
    const r = decideVexStatement(input({ status }));
    assert.equal(r.next.transitions?.length, MAX_TRANSITIONS);
    assert.equal(r.next.transitions?.at(-1)?.reason, "NoLongerObserved");
    assert.equal(r.next.transitions?.[0]?.at, transitions[1]?.at);
  });

  test("after leaving affected, not_affected needs another full quiet period", () => {
    const left: VexStatementStatus = {
      vexStatus: "under_investigation",
      transitions: [
        { to: "affected", at: rfc3339(NOW - 50_000 * S), reason: "SymbolObserved" },
        {
          from: "affected",
          to: "under_investigation",
          at: rfc3339(NOW - (QUIET_S - 60) * S),
          reason: "NoLongerObserved",
        },
      ],
    };
    assert.equal(observingSinceMs(left), NOW - (QUIET_S - 60) * S);
    const early = decideVexStatement(input({ status: left }));
    assert.equal(early.reason, "AwaitingEvidence");
    assert.equal(early.requeueAfterMs, 60 * S, "requeued for when the quiet period can have elapsed");
    const later = decideVexStatement(input({ status: left, now: NOW + 60 * S }));
    assert.equal(later.reason, "NotInExecutePath");
  });

  test("requeue: decided states revisit every revisitSeconds; undecided poll each window", () => {
    assert.equal(decideVexStatement(input({ status: observing(QUIET_S) })).requeueAfterMs, REVISIT_S * S);
    assert.equal(decideVexStatement(input({ hot: 5 })).requeueAfterMs, REVISIT_S * S);
    assert.equal(decideVexStatement(input({ hot: 2 })).requeueAfterMs, Math.min(WINDOW_S, REVISIT_S) * S);
  });

  test("policy defaults", () => {
    assert.deepEqual(resolvePolicy(undefined), {
      windowSeconds: 3600,
      minSamples: 1,
      notAffectedAfterSeconds: 86400,
      revisitSeconds: 3600,
    });
  });
});
