/**
 * An offline check of an object against a CRD's structural schema: types, required fields, bounds,
 * patterns, enums, formats and list-map/set uniqueness — everything the API server checks except CEL
 * rules and defaulting. Errors read like the API server's (`spec.sections[1]: Duplicate value`), so a
 * test can expect the same text from both.
 *
 * Fields a schema does not declare are errors here, where the API server would prune them (or reject
 * them under strict field validation, as kubectl asks for): in our own objects they are mistakes.
 */
import type { Schema } from "./schema/common.ts";

/** RFC 3339 date-time, as the API server's `date-time` format accepts it. */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function child(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}

/** Every violation of `schema` by `value`, as `path: message` strings; empty when it conforms. */
export function validateStructural(schema: Schema, value: unknown, path = ""): string[] {
  const errors: string[] = [];
  const fail = (message: string): void => {
    errors.push(`${path || "<root>"}: ${message}`);
  };
  switch (schema.type) {
    case "object": {
      if (!isObject(value)) {
        fail(`must be of type object`);
        break;
      }
      for (const name of schema.required ?? []) {
        if (value[name] === undefined) errors.push(`${child(path, name)}: Required value`);
      }
      const keys = Object.keys(value);
      if (schema.maxProperties !== undefined && keys.length > schema.maxProperties) {
        fail(`must have at most ${schema.maxProperties} properties`);
      }
      for (const key of keys) {
        const sub = schema.properties?.[key] ?? schema.additionalProperties;
        if (sub) errors.push(...validateStructural(sub, value[key], child(path, key)));
        else if (schema.properties) errors.push(`${child(path, key)}: unknown field`);
      }
      break;
    }
    case "array": {
      if (!Array.isArray(value)) {
        fail("must be of type array");
        break;
      }
      if (schema.maxItems !== undefined && value.length > schema.maxItems) {
        fail(`Too many: ${value.length}: must have at most ${schema.maxItems} items`);
      }
      if (schema.minItems !== undefined && value.length < schema.minItems) {
        fail(`should have at least ${schema.minItems} items`);
      }
      const seen = new Set<string>();
      value.forEach((item: unknown, i) => {
        const at = `${path}[${i}]`;
        if (schema.items) errors.push(...validateStructural(schema.items, item, at));
        const listType = schema["x-kubernetes-list-type"];
        if (listType === "map" || listType === "set") {
          const keys = schema["x-kubernetes-list-map-keys"] ?? [];
          const identity = JSON.stringify(
            listType === "map" && isObject(item) ? keys.map((k) => item[k]) : item,
          );
          if (seen.has(identity)) errors.push(`${at}: Duplicate value`);
          seen.add(identity);
        }
      });
      break;
    }
    case "string": {
      if (typeof value !== "string") {
        fail("must be of type string");
        break;
      }
      // OpenAPI lengths count characters (code points), not UTF-16 units or bytes.
      const length = Array.from(value).length;
      if (schema.maxLength !== undefined && length > schema.maxLength) {
        fail(`Too long: may not be more than ${schema.maxLength} characters`);
      }
      if (schema.minLength !== undefined && length < schema.minLength) {
        fail(`should be at least ${schema.minLength} chars long`);
      }
      if (schema.pattern !== undefined && !new RegExp(schema.pattern, "u").test(value)) {
        fail(`should match '${schema.pattern}'`);
      }
      if (schema.enum && !schema.enum.includes(value)) fail(`Unsupported value: ${JSON.stringify(value)}`);
      if (schema.format === "date-time" && !DATE_TIME.test(value)) fail("must be a date-time (RFC 3339)");
      if (schema.format === "byte" && !BASE64.test(value)) fail("must be base64");
      break;
    }
    case "integer": {
      if (typeof value !== "number" || !Number.isInteger(value)) {
        fail(`must be of type ${schema.format ?? "integer"}`);
        break;
      }
      if (schema.format === "int32" && (value < INT32_MIN || value > INT32_MAX)) fail("must fit int32");
      if (schema.format === "int64" && !Number.isSafeInteger(value)) fail("must be a safe int64");
      if (schema.minimum !== undefined && value < schema.minimum) {
        fail(`should be greater than or equal to ${schema.minimum}`);
      }
      if (schema.maximum !== undefined && value > schema.maximum) {
        fail(`should be less than or equal to ${schema.maximum}`);
      }
      break;
    }
    case "boolean":
      if (typeof value !== "boolean") fail("must be of type boolean");
      break;
    case undefined:
      break;
  }
  return errors;
}
