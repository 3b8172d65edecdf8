// The delta_risk breakdown as the CLI prints it: an aligned text table for people and RFC 8785
// canonical JSON for machines. Both are pure functions of the RiskResult.
import { canonicalJson } from "../canonical-json.ts";
import type { RiskResult } from "./score.ts";

/** Fixed six decimals, as every number in a RiskResult is rounded to 1e-6. */
function num(x: number): string {
  return x.toFixed(6);
}

/**
 * The breakdown as text:
 *
 *     delta_risk 0.412000 (max 0.5): within the limit
 *     provenance completeness 0.450000 (min 0.5): BELOW THE MINIMUM
 *     policy sha256:…
 *
 *     FACTOR                       VALUE     WEIGHT    CONTRIBUTION  REASONS
 *     provenance_completeness      0.550000  0.300000  0.165000      provenance gap: …
 *                                                                     DSSE signature valid
 *
 * One line per reason (continuation lines indented to the REASONS column); rows in breakdown order
 * (contribution descending). Ends with a newline.
 */
export function renderRiskTable(result: RiskResult): string {
  const lines: string[] = [
    `delta_risk ${num(result.score)} (max ${result.maxDeltaRisk}): ${result.hints.exceedsMax ? "EXCEEDS THE LIMIT" : "within the limit"}`,
    `provenance completeness ${num(result.provenanceCompleteness)} (min ${result.minProvenance}): ${result.hints.provenanceBelowMin ? "BELOW THE MINIMUM" : "meets the minimum"}`,
    `top contributors: ${result.topContributors.map((c) => `${c.factor} ${num(c.contribution)}`).join(", ")}`,
    `policy ${result.policyHash}`,
    "",
  ];
  const header = ["FACTOR", "VALUE", "WEIGHT", "CONTRIBUTION"];
  const rows = result.breakdown.map((b) => [b.factor, num(b.value), num(b.weight), num(b.contribution)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const cells = (r: readonly string[]): string => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ");
  const indent = " ".repeat(widths.reduce((a, w) => a + w + 2, 0));
  lines.push(`${cells(header)}  REASONS`);
  result.breakdown.forEach((b, i) => {
    const [first = "", ...rest] = b.reasons;
    lines.push(`${cells(rows[i] ?? [])}  ${first}`.trimEnd());
    for (const reason of rest) lines.push(`${indent}${reason}`);
  });
  return `${lines.join("\n")}\n`;
}

/** The result as RFC 8785 canonical JSON (no trailing newline): same result, same bytes. */
export function renderRiskJson(result: RiskResult): string {
  return canonicalJson(result);
}
