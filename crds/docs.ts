/**
 * Renders `docs/crds.md` from the schema sources: one table per kind (field, type, meaning), the shared
 * types once, and the CEL rules with their messages. Generated, so the reference cannot drift from the CRDs.
 */
import { GROUP, type KindDefinition, type Schema, SHARED_TYPES, VERSION } from "./schema/common.ts";

const SHARED_NAMES = new Set(SHARED_TYPES.map((s) => s.tsName));

interface Row {
  field: string;
  type: string;
  meaning: string;
}

interface Rule {
  at: string;
  rule: string;
  message: string;
}

/** A code span; in a table cell, pipes are escaped (GFM unescapes them there, and only there). */
function code(text: string, inTable = true): string {
  // A backtick inside would end the span; none of our patterns or rules has one.
  return `\`${inTable ? text.replaceAll("|", "\\|") : text}\``;
}

function anchor(name: string): string {
  return `#${name.toLowerCase()}`;
}

/** Base type of a node: `string`, `int64`, `[]Condition`, `map[string]int64`, … */
function typeName(node: Schema, top: boolean): string {
  if (!top && node.tsName !== undefined && SHARED_NAMES.has(node.tsName)) {
    return `[${node.tsName}](${anchor(node.tsName)})`;
  }
  switch (node.type) {
    case "array":
      return `[]${node.items ? typeName(node.items, false) : "unknown"}`;
    case "integer":
      return node.format ?? "integer";
    case "string":
      if (node.format === "date-time") return "date-time";
      if (node.format === "byte") return "base64";
      return node.enum ? "enum" : "string";
    case "object":
      if (node.additionalProperties) return `map[string]${typeName(node.additionalProperties, false)}`;
      return "object";
    default:
      return node.type ?? "unknown";
  }
}

function constraints(node: Schema): string[] {
  const out: string[] = [];
  if (node.enum) out.push(node.enum.map((v) => code(v)).join(", "));
  if (node.pattern !== undefined) out.push(code(node.pattern));
  if (node.minLength !== undefined && node.maxLength !== undefined) {
    out.push(`${node.minLength}–${node.maxLength} chars`);
  } else if (node.maxLength !== undefined && node.format !== "date-time") {
    out.push(`≤ ${node.maxLength} chars`);
  }
  if (node.minimum !== undefined && node.maximum !== undefined) out.push(`${node.minimum}–${node.maximum}`);
  else if (node.minimum !== undefined) out.push(`≥ ${node.minimum}`);
  if (node.maxItems !== undefined) {
    out.push(node.minItems ? `${node.minItems}–${node.maxItems} items` : `≤ ${node.maxItems} items`);
  }
  if (node.maxProperties !== undefined) out.push(`≤ ${node.maxProperties} entries`);
  const listType = node["x-kubernetes-list-type"];
  if (listType === "map")
    out.push(`map list keyed by ${(node["x-kubernetes-list-map-keys"] ?? []).join(", ")}`);
  if (listType === "set") out.push("set");
  return out;
}

/** Rows for `node`'s properties, recursing into objects and list items that are not shared types. */
function walk(node: Schema, path: string, rows: Row[], rules: Rule[], top: boolean): void {
  for (const v of node["x-kubernetes-validations"] ?? []) {
    rules.push({ at: path || "(root)", rule: v.rule, message: v.message });
  }
  if (!top && node.tsName !== undefined && SHARED_NAMES.has(node.tsName)) return;
  const container = node.type === "array" ? node.items : node;
  if (!container) return;
  if (container !== node) {
    walk(container, `${path}[]`, rows, rules, false);
    return;
  }
  const required = new Set(node.required ?? []);
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const field = path ? `${path}.${name}` : name;
    const type = [typeName(child, false), ...(required.has(name) ? ["required"] : []), ...constraints(child)];
    const meaning = [child.description ?? ""];
    if (child.default !== undefined) meaning.push(`Default: ${code(JSON.stringify(child.default))}.`);
    rows.push({ field: code(field), type: type.join(", "), meaning: meaning.join(" ").trim() });
    walk(child, field, rows, rules, false);
  }
}

function table(rows: Row[]): string[] {
  return [
    "| Field | Type | Meaning |",
    "| --- | --- | --- |",
    ...rows.map((r) => `| ${r.field} | ${r.type} | ${r.meaning.replaceAll("|", "\\|")} |`),
  ];
}

function ruleList(rules: Rule[]): string[] {
  if (rules.length === 0) return [];
  return [
    "",
    "Validation rules (CEL, checked by the API server):",
    "",
    ...rules.map((r) => `- ${code(r.at, false)}: ${code(r.rule, false)} — ${r.message}`),
  ];
}

function kindSection(def: KindDefinition): string[] {
  const rows: Row[] = [];
  const rules: Rule[] = [];
  for (const v of def.rootValidations ?? []) rules.push({ at: "(root)", rule: v.rule, message: v.message });
  walk({ type: "object", properties: { spec: def.spec, status: def.status } }, "", rows, rules, true);
  const columns = def.printerColumns.map((c) => c.name).join(", ");
  return [
    `## ${def.kind}`,
    "",
    def.description,
    "",
    `Scope: ${def.scope}. ` +
      `${[...def.shortNames, def.plural].map((n) => code(`kubectl get ${n}`)).join(" or ")} shows ${columns}.`,
    "",
    ...(def.notes ?? []).flatMap((n) => [n, ""]),
    ...table(rows),
    ...ruleList(rules),
    "",
    ...conditionSection(def),
  ];
}

function conditionSection(def: KindDefinition): string[] {
  const lines = [`Conditions of a ${def.kind}:`, "", "| Type | Reason | Meaning |", "| --- | --- | --- |"];
  for (const c of def.conditions) {
    lines.push(`| ${code(c.type)} | | ${c.meaning} |`);
    for (const [reason, meaning] of Object.entries(c.reasons ?? {})) {
      lines.push(`| | ${code(reason)} | ${meaning} |`);
    }
  }
  return [...lines, ""];
}

function sharedSection(schema: Schema): string[] {
  const rows: Row[] = [];
  const rules: Rule[] = [];
  walk(schema, "", rows, rules, true);
  return [
    `### ${schema.tsName ?? ""}`,
    "",
    schema.description ?? "",
    "",
    ...table(rows),
    ...ruleList(rules),
    "",
  ];
}

export function renderDocs(kinds: readonly KindDefinition[]): string {
  const lines = [
    "# Custom resources",
    "",
    "<!-- generated by crds/gen.ts from crds/schema/ — do not edit; run `make crds` -->",
    "",
    `Group \`${GROUP}\`, version \`${VERSION}\`. Every kind has a \`status\` subresource, \`status.observedGeneration\` ` +
      "and `status.conditions` (Kubernetes API conventions), and belongs to the categories `stella` and `evidence`: " +
      "`kubectl get stella` lists them all. Every string and list is bounded, integers replace floats (shares in " +
      "permille), durations are whole `…Seconds`.",
    "",
    "| Kind | Scope | Short name | Plural |",
    "| --- | --- | --- | --- |",
    ...kinds.map(
      (d) =>
        `| [${d.kind}](${anchor(d.kind)}) | ${d.scope} | ${d.shortNames.map((v) => code(v)).join(", ")} | ${code(d.plural)} |`,
    ),
    "",
    ...kinds.flatMap(kindSection),
    "## What the schema does not check",
    "",
    "CEL rules see one object (and, for transition rules, its previous version). These checks are left to the " +
      "operator and the admission webhook, which report them in conditions:",
    "",
    "- that an envelope's signatures verify, with which key, and that the signed payload matches the spec " +
      "(FuncProof and DeltaAttestation `Verified`);",
    "- that `bodyDigest` and `envelopeRef.digest` match the bytes stored at `bodyRef` and `envelopeRef.location`;",
    "- anything across objects: that `rollbackOf` names an existing DeltaAttestation whose digests are this " +
      "one's reversed, or that a RolloutGate's Secrets exist and hold PEM public keys.",
    "",
    "## Shared types",
    "",
    ...SHARED_TYPES.flatMap(sharedSection),
  ];
  return lines.join("\n");
}
