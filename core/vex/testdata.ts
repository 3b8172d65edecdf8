// Fixed decisions shared by the core/vex tests (not a test file itself).
import type { VexDecision } from "./decision.ts";

export const BUILD_ID = "03d4a1b2c3d4e5f60718293a4b5c6d7e8f901234";
export const IMAGE = `sha256:${"ab".repeat(32)}`;

export const AFFECTED: VexDecision = {
  vulnerability: { id: "CVE-2024-1234", aliases: ["GHSA-abcd-efgh-ijkl"] },
  product: { imageDigest: IMAGE },
  symbols: ["stella_hot", "stella_cold"],
  status: "affected",
  reason: "SymbolObserved",
  evidence: {
    windowStartMs: Date.UTC(2024, 4, 1, 12, 0, 0),
    windowEndMs: Date.UTC(2024, 4, 1, 14, 0, 0),
    samples: 173,
    productSamples: 1000,
    cpuSharePermille: 173,
    observedSymbols: [{ name: "stella_hot", samples: 173 }],
    topStacks: [
      { stack: "stella_hot;handle_request;main", count: 150 },
      { stack: "stella_hot;worker;start_thread", count: 23 },
    ],
    buildIds: [BUILD_ID],
    pods: ["shop/apigw-0"],
    nodes: ["node-a"],
  },
};

export const NOT_IN_PATH: VexDecision = {
  ...AFFECTED,
  status: "not_affected",
  justification: "vulnerable_code_not_in_execute_path",
  reason: "NotInExecutePath",
  evidence: {
    ...AFFECTED.evidence,
    windowStartMs: Date.UTC(2024, 3, 30, 14, 0, 0),
    samples: 0,
    productSamples: 52_000,
    cpuSharePermille: 0,
    observedSymbols: [],
    topStacks: [],
    buildIds: [],
    pods: [],
    nodes: [],
    presentInBuildIds: [BUILD_ID],
  },
};

export const NOT_PRESENT: VexDecision = {
  ...NOT_IN_PATH,
  product: { imageDigest: IMAGE, purl: "pkg:deb/debian/openssl@3.0.11-1" },
  justification: "vulnerable_code_not_present",
  reason: "NotPresent",
  evidence: { ...NOT_IN_PATH.evidence, checkedBuildIds: [BUILD_ID], presentInBuildIds: [] },
};
