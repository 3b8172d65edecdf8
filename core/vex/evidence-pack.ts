/**
 * The evidence pack: the human side of a VEX decision. One sentence (for a Kubernetes Event, a PR comment,
 * a chat message) and a Markdown block with the observations behind it (top stacks, pods, nodes, BuildIDs).
 * Pure: every time shown comes from the decision, never from the clock.
 */
import type { DecisionEvidence, VexDecision } from "./decision.ts";

/** Items listed inline in the sentence before "and N more". */
const SENTENCE_LIST_MAX = 3;

/** "03d4…": BuildIDs are long hex strings; four digits tell them apart in a sentence. */
export function shortBuildId(buildId: string): string {
  return buildId.length <= 4 ? buildId : `${buildId.slice(0, 4)}…`;
}

function shortDigest(digest: string): string {
  const [alg, hex] = digest.split(":", 2);
  return hex === undefined ? digest : `${alg}:${hex.slice(0, 12)}…`;
}

/** How the product is named in prose: the purl (the package) over the image digest. */
export function productLabel(d: VexDecision): string {
  if (d.product.purl !== undefined) return d.product.purl;
  if (d.product.imageDigest !== undefined) return shortDigest(d.product.imageDigest);
  return "the product";
}

function listed(items: readonly string[], max = SENTENCE_LIST_MAX): string {
  if (items.length <= max) return items.join(", ");
  return `${items.slice(0, max).join(", ")} and ${items.length - max} more`;
}

function two(n: number): string {
  return String(n).padStart(2, "0");
}

function day(t: Date): string {
  return `${t.getUTCFullYear()}-${two(t.getUTCMonth() + 1)}-${two(t.getUTCDate())}`;
}

function hm(t: Date): string {
  return `${two(t.getUTCHours())}:${two(t.getUTCMinutes())}`;
}

/** "between 12:00 and 14:00 UTC", with dates when the window crosses midnight (UTC). */
export function windowPhrase(e: Pick<DecisionEvidence, "windowStartMs" | "windowEndMs">): string {
  const a = new Date(e.windowStartMs);
  const b = new Date(e.windowEndMs);
  if (day(a) === day(b)) return `between ${hm(a)} and ${hm(b)} UTC`;
  return `between ${day(a)} ${hm(a)} and ${day(b)} ${hm(b)} UTC`;
}

/** Permille as a percentage with one decimal: 173 → "17.3%". */
export function percent(permille: number): string {
  return `${(permille / 10).toFixed(1)}%`;
}

function verdict(d: VexDecision): string {
  return d.justification === undefined ? `VEX → ${d.status}` : `VEX → ${d.status} (${d.justification})`;
}

function buildIdPhrase(ids: readonly string[]): string {
  if (ids.length === 0) return "";
  const word = ids.length === 1 ? "BuildID" : "BuildIDs";
  return ` (${word} ${listed(ids.map(shortBuildId))})`;
}

/**
 * The one-sentence summary, e.g. "CVE-2024-1234 observed in stella_hot (BuildID 03d4…), 17.3% of CPU in
 * shop/apigw-0 between 12:00 and 14:00 UTC; VEX → affected".
 */
export function evidenceSentence(d: VexDecision): string {
  const e = d.evidence;
  const id = d.vulnerability.id;
  const when = windowPhrase(e);
  const all = listed([...d.symbols]);
  if (d.status === "affected") {
    const names = e.observedSymbols.length > 0 ? listed(e.observedSymbols.map((s) => s.name)) : all;
    const where = e.pods.length > 0 ? listed(e.pods) : productLabel(d);
    return `${id} observed in ${names}${buildIdPhrase(e.buildIds)}, ${percent(e.cpuSharePermille)} of CPU in ${where} ${when}; ${verdict(d)}`;
  }
  if (d.justification === "vulnerable_code_not_present") {
    const checked = e.checkedBuildIds ?? [];
    const of =
      checked.length === 0
        ? `the FuncProofs of ${productLabel(d)}`
        : `the FuncProofs of ${productLabel(d)}${buildIdPhrase(checked)}`;
    return `${id}: ${all} absent from ${of}; ${verdict(d)}`;
  }
  if (d.status === "not_affected") {
    return `${id}: ${all} not observed in ${e.productSamples} samples of ${productLabel(d)} ${when}; ${verdict(d)}`;
  }
  if (d.status === "under_investigation") {
    if (e.samples > 0) {
      const names = listed(e.observedSymbols.map((s) => s.name));
      return `${id}: ${names} observed in ${e.samples} samples of ${productLabel(d)} ${when}, not enough to decide; ${verdict(d)}`;
    }
    if (e.productSamples === 0) {
      return `${id}: ${productLabel(d)} did not run ${when}, no evidence about ${all} yet; ${verdict(d)}`;
    }
    return `${id}: ${all} not observed in ${e.productSamples} samples of ${productLabel(d)} ${when}, not yet for long enough; ${verdict(d)}`;
  }
  return `${id}: ${productLabel(d)}; ${verdict(d)}`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function bullets(items: readonly string[]): string[] {
  return items.length === 0 ? ["(none)"] : items.map((i) => `- \`${i}\``);
}

/**
 * The evidence pack as Markdown (also readable as plain text): the sentence, a summary table, then the
 * observed symbols, top stacks, pods, nodes and BuildIDs.
 */
export function evidenceMarkdown(d: VexDecision): string {
  const e = d.evidence;
  const aliases = d.vulnerability.aliases ?? [];
  const lines: string[] = [
    `# ${d.vulnerability.id}: ${d.status}`,
    "",
    evidenceSentence(d),
    "",
    "| field | value |",
    "| --- | --- |",
    `| vulnerability | ${d.vulnerability.id}${aliases.length > 0 ? ` (${aliases.join(", ")})` : ""} |`,
  ];
  if (d.product.imageDigest !== undefined) lines.push(`| image | ${d.product.imageDigest} |`);
  if (d.product.purl !== undefined) lines.push(`| package | ${d.product.purl} |`);
  lines.push(`| status | ${d.status} |`);
  if (d.justification !== undefined) lines.push(`| justification | ${d.justification} |`);
  lines.push(
    `| reason | ${d.reason} |`,
    `| window | ${iso(e.windowStartMs)} – ${iso(e.windowEndMs)} |`,
    `| samples | ${e.samples} of ${e.productSamples} (${percent(e.cpuSharePermille)} of CPU) |`,
    "",
    "## Vulnerable symbols",
    "",
  );
  const counts = new Map(e.observedSymbols.map((s) => [s.name, s.samples]));
  for (const name of d.symbols) lines.push(`- \`${name}\`: ${counts.get(name) ?? 0} samples`);
  lines.push("", "## Top stacks (leaf first)", "");
  if (e.topStacks.length === 0) lines.push("(none)");
  else {
    lines.push("```");
    for (const s of e.topStacks) lines.push(`${String(s.count).padStart(8)}  ${s.stack}`);
    lines.push("```");
  }
  lines.push("", "## Pods", "", ...bullets(e.pods), "", "## Nodes", "", ...bullets(e.nodes));
  lines.push("", "## BuildIDs observed", "", ...bullets(e.buildIds));
  if (e.checkedBuildIds !== undefined) {
    lines.push("", "## BuildIDs whose FuncProofs were searched", "", ...bullets(e.checkedBuildIds));
  }
  if (e.presentInBuildIds !== undefined) {
    lines.push(
      "",
      "## BuildIDs whose FuncProofs contain a vulnerable symbol",
      "",
      ...bullets(e.presentInBuildIds),
    );
  }
  return `${lines.join("\n")}\n`;
}
