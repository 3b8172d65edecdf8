// Runtime hotness for the webhook's delta_risk (issue 7): the share of an image's CPU samples whose stacks ran
// through a symbol, from the operator's hot-symbol index over a recent window. A change to code that runs in
// production weighs more than one to code that never runs.
import type { HotSymbolIndex } from "../index/types.ts";
import type { HotnessLookup } from "./store.ts";

/**
 * A lookup over the window [sinceMs, untilMs). Undefined for an image the agents have no samples of (nothing
 * is known, so the attestation's own inputs stand); 0 for a symbol that never ran in a sampled image. Made
 * fresh for each refresh: it memoises each image's sample total.
 */
export function indexHotness(
  index: Pick<HotSymbolIndex, "query" | "productSamples">,
  sinceMs: number,
  untilMs: number,
): HotnessLookup {
  const totals = new Map<string, number>();
  return (imageDigest, symbol) => {
    let total = totals.get(imageDigest);
    if (total === undefined) {
      total = index.productSamples(imageDigest, sinceMs, untilMs).samples;
      totals.set(imageDigest, total);
    }
    if (total === 0) return undefined;
    const seen = index.query({ name: symbol, imageDigest, sinceMs, untilMs });
    return Math.min(1, seen.samples / total);
  };
}
