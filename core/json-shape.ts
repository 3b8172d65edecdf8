// Shape checks shared by the parsers of untrusted JSON (envelopes, statements, graphs, bundles): one wording for
// "what was there instead" in every error message.

/** A JSON object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** What a value is, for messages: "null", "an array", "an object", "a string", "a number", …. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  const type = typeof value;
  return type === "object" || type === "undefined" ? `an ${type}` : `a ${type}`;
}
