// Validation of CycloneDX 1.6 JSON against the official schema shipped with @cyclonedx/cyclonedx-library.
//
// The library's own `Validation.JsonStrictValidator` is used when its optional peer dependencies are
// installed (ajv, ajv-formats and ajv-formats-draft2019). This project carries only ajv and ajv-formats,
// so otherwise the same set-up is reproduced here: the library's schema files (bom-1.6 with the spdx,
// jsf and cryptography-defs schemas it references), ajv-formats, "iri-reference" accepted as the library
// does, and "idn-email" (the one format the library takes from ajv-formats-draft2019) checked for shape.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

import { Spec, Validation } from "@cyclonedx/cyclonedx-library";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule, { type FormatsPlugin } from "ajv-formats";

export interface SbomValidation {
  valid: boolean;
  errors: string[];
  /** "library": Validation.JsonStrictValidator; "schema": the library's schema files through ajv here. */
  validator: "library" | "schema";
}

const SCHEMA_ROOT = join(
  dirname(createRequire(import.meta.url).resolve("@cyclonedx/cyclonedx-library/package.json")),
  "res",
  "schema",
);

const IDN_EMAIL = /^[^\s@]+@[^\s@]+$/u;

let compiled: ValidateFunction | undefined;

function readSchema(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(SCHEMA_ROOT, file), "utf8")) as Record<string, unknown>;
}

function compile(): ValidateFunction {
  if (compiled !== undefined) return compiled;
  const ajv = new Ajv({
    allErrors: true,
    useDefaults: false,
    strict: false,
    addUsedSchema: false,
    schemas: {
      "http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json": readSchema("spdx.SNAPSHOT.schema.json"),
      "http://cyclonedx.org/schema/cryptography-defs.SNAPSHOT.schema.json": readSchema(
        "cryptography-defs.SNAPSHOT.schema.json",
      ),
      "http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json": readSchema(
        "jsf-0.82.SNAPSHOT.schema.json",
      ),
    },
  });
  // ajv-formats is CommonJS with `exports.default`; under nodenext the default import is the module object.
  const mod = addFormatsModule as unknown as { default?: FormatsPlugin } & FormatsPlugin;
  (mod.default ?? mod)(ajv);
  ajv.addFormat("idn-email", IDN_EMAIL);
  ajv.addFormat("iri-reference", true);
  compiled = ajv.compile(readSchema("bom-1.6.SNAPSHOT.schema.json"));
  return compiled;
}

function describe(e: ErrorObject): string {
  return `${e.instancePath === "" ? "/" : e.instancePath}: ${e.message ?? e.keyword}`;
}

/** Validates CycloneDX 1.6 JSON text against the schema. Never throws for invalid documents. */
export async function validateCycloneDx16(json: string): Promise<SbomValidation> {
  try {
    const err: unknown = await new Validation.JsonStrictValidator(Spec.Version.v1dot6).validate(json);
    return {
      valid: err === null,
      errors: err === null ? [] : [JSON.stringify(err)],
      validator: "library",
    };
  } catch (cause: unknown) {
    if (!(cause instanceof Validation.MissingOptionalDependencyError)) throw cause;
  }
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (cause: unknown) {
    return { valid: false, errors: [`not JSON: ${(cause as Error).message}`], validator: "schema" };
  }
  const validate = compile();
  if (validate(data)) return { valid: true, errors: [], validator: "schema" };
  return { valid: false, errors: (validate.errors ?? []).map(describe), validator: "schema" };
}
