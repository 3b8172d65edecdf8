import { StellaError } from "../errors.ts";

export type RiskErrorCode = "RISK_POLICY_IO" | "RISK_POLICY_INVALID" | "RISK_INPUTS_INVALID";

/**
 * A policy file or a `score_inputs` document that cannot be used. `file` names the document (a path,
 * or e.g. "score_inputs"), `field` the dotted path of the offending key ("" for the whole document),
 * `limit` what was expected. The message is `${file}: ${field}: ${limit}` (the field part is left out
 * when empty), so the three are readable without looking at the properties.
 */
export class RiskError extends StellaError<RiskErrorCode> {
  readonly file: string;
  readonly field: string;
  readonly limit: string;

  constructor(
    code: RiskErrorCode,
    file: string,
    field: string,
    limit: string,
    options?: { cause?: unknown },
  ) {
    super(code, field === "" ? `${file}: ${limit}` : `${file}: ${field}: ${limit}`, options);
    this.file = file;
    this.field = field;
    this.limit = limit;
  }
}

/** How a value is described in messages: `-1`, `"abc"`, `a mapping`, `a list`, `null`, `nothing`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint")
    return String(value);
  return typeof value;
}
