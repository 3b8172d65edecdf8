import { readFileSync, statSync, writeFileSync } from "node:fs";

import { InvalidArgumentError, type Command } from "commander";

import { canonicalJson } from "../../core/canonical-json.ts";

import { attest, AttestError, subjectFromFile } from "../../core/dsse/attest.ts";
import { envelopeToBundleJson, parseSignedDocument } from "../../core/dsse/bundle.ts";
import {
  DSSE_VERIFY_FAILURES,
  DsseError,
  MAX_ENVELOPE_BYTES,
  envelopeToJson,
  readEnvelopeFile,
} from "../../core/dsse/envelope.ts";
import { loadPrivateKeyFile, loadPublicKeyFile } from "../../core/dsse/keys.ts";
import { keySigner } from "../../core/dsse/sign.ts";
import {
  IN_TOTO_PAYLOAD_TYPE,
  parseStatement,
  type JsonObject,
  type Statement,
} from "../../core/dsse/statement.ts";
import { verifyEnvelope, type VerifyResult } from "../../core/dsse/verify.ts";
import { action, printOut } from "../action.ts";
import { EXIT_OK, EXIT_USAGE, EXIT_VERIFY_FAILED } from "../exit-codes.ts";
import { collect } from "../options.ts";
import { makeTrustedRoot } from "../../core/tlog/trusted-root.ts";
import { addRegistryOptions } from "../registry.ts";
import { attachAttestations, type AttachOptions } from "./publish.ts";

interface SignOptions {
  key: string[];
  predicateType: string;
  subject?: string[];
  subjectName?: string[];
  payloadType: string;
  bundle?: string;
  out?: string;
}

interface VerifyOptions {
  key: string[];
  threshold: number;
  payloadType: string;
  json?: boolean;
}

function positiveInt(value: string): number {
  if (!/^[1-9][0-9]{0,5}$/.test(value)) throw new InvalidArgumentError("expected a positive integer");
  return Number(value);
}

function usage(message: string): number {
  process.stderr.write(`stella: usage: ${message}\n`);
  return EXIT_USAGE;
}

function writeOutput(path: string, text: string): void {
  try {
    writeFileSync(path, text.endsWith("\n") ? text : `${text}\n`);
  } catch (cause) {
    throw new AttestError("ATTEST_IO", `${path}: cannot write: ${(cause as Error).message}`, { cause });
  }
}

function readPredicate(path: string): JsonObject {
  let text: string;
  try {
    if (statSync(path).size > MAX_ENVELOPE_BYTES) {
      throw new AttestError("ATTEST_PREDICATE", `${path}: predicate over the 64 MiB envelope limit`);
    }
    text = readFileSync(path, "utf8");
  } catch (cause) {
    if (cause instanceof AttestError) throw cause;
    throw new AttestError("ATTEST_IO", `${path}: cannot read predicate: ${(cause as Error).message}`, {
      cause,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new AttestError("ATTEST_PREDICATE", `${path}: predicate is not JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new AttestError("ATTEST_PREDICATE", `${path}: predicate must be a JSON object`);
  }
  return value as JsonObject;
}

async function signCommand(predicatePath: string, opts: SignOptions): Promise<number> {
  const subjectFiles = opts.subject ?? [];
  const subjectNames = opts.subjectName ?? [];
  if (subjectFiles.length === 0) return usage("attest sign: at least one --subject FILE is required");
  if (subjectNames.length > 0 && subjectNames.length !== subjectFiles.length) {
    return usage(
      `attest sign: ${subjectNames.length} --subject-name for ${subjectFiles.length} --subject (give one per subject, in order)`,
    );
  }
  if (opts.bundle !== undefined && opts.key.length !== 1) {
    return usage("attest sign: --bundle needs exactly one --key (a sigstore bundle holds one signature)");
  }
  const signers = opts.key.map((path) => keySigner(loadPrivateKeyFile(path)));
  const predicate = readPredicate(predicatePath);
  const subjects = await Promise.all(subjectFiles.map((path, i) => subjectFromFile(path, subjectNames[i])));
  const envelope = await attest({
    subjects,
    predicateType: opts.predicateType,
    predicate,
    signers,
    payloadType: opts.payloadType,
  });
  const json = envelopeToJson(envelope);
  if (opts.out !== undefined) writeOutput(opts.out, json);
  else printOut(json);
  if (opts.bundle !== undefined) writeOutput(opts.bundle, envelopeToBundleJson(envelope));
  return EXIT_OK;
}

function humanResult(file: string, threshold: number, result: VerifyResult, statement?: Statement): string {
  const keys = `${result.verifiedKeyids.length} trusted key(s) [${result.verifiedKeyids.join(", ")}] (threshold ${threshold})`;
  if (statement === undefined)
    return `verified ${file}: signed by ${keys}; payloadType ${result.payloadType}`;
  const subjects = statement.subject.map((s) => s.name).join(", ");
  return `verified ${file}: signed by ${keys}; predicateType ${statement.predicateType}; subject(s): ${subjects}`;
}

function verifyCommand(file: string, opts: VerifyOptions): number {
  const keys = opts.key.map(loadPublicKeyFile);
  const document = parseSignedDocument(readEnvelopeFile(file), file);
  let result: VerifyResult;
  try {
    result = verifyEnvelope(document.envelope, keys, {
      threshold: opts.threshold,
      payloadTypes: [opts.payloadType],
      name: file,
    });
  } catch (err) {
    if (!(err instanceof DsseError)) throw err;
    if (err.code === "DSSE_BAD_THRESHOLD") return usage(`attest verify: ${err.message}`);
    if (!DSSE_VERIFY_FAILURES.has(err.code)) throw err;
    if (opts.json === true) {
      printOut(
        canonicalJson({
          verified: false,
          file,
          format: document.format,
          error: { code: err.code, message: err.message },
        }),
      );
    } else {
      process.stderr.write(`stella: ${err.code}: ${err.message}\n`);
    }
    return EXIT_VERIFY_FAILED;
  }
  // The signature is good; a statement that does not parse is a malformed input (exit 3), not a "no".
  const statement =
    result.payloadType === IN_TOTO_PAYLOAD_TYPE ? parseStatement(result.payload, file) : undefined;
  if (opts.json === true) {
    printOut(
      canonicalJson({
        verified: true,
        file,
        format: document.format,
        payloadType: result.payloadType,
        verifiedKeyids: result.verifiedKeyids,
        threshold: opts.threshold,
        ...(statement === undefined
          ? {}
          : {
              statementType: statement._type,
              predicateType: statement.predicateType,
              subjects: statement.subject,
            }),
      }),
    );
  } else {
    printOut(humanResult(file, opts.threshold, result, statement));
  }
  return EXIT_OK;
}

export function registerAttest(program: Command): void {
  const cmd = program.command("attest").description("Sign and verify in-toto attestations in DSSE envelopes");

  cmd
    .command("sign")
    .description(
      "Sign PREDICATE.json as an in-toto v1 Statement about the --subject files; prints the DSSE envelope (canonical JSON)",
    )
    .argument("<predicate>", "predicate JSON file (an object)")
    .requiredOption("--key <key.pem>", "PEM private key (PKCS#8); repeat for several signatures", collect)
    .requiredOption("--predicate-type <uri>", "the predicateType URI")
    .option("--subject <file>", "a subject file, hashed with SHA-256; repeatable", collect)
    .option(
      "--subject-name <name>",
      "name for the matching --subject (default: its basename); repeatable",
      collect,
    )
    .option("--payload-type <type>", "DSSE payloadType", IN_TOTO_PAYLOAD_TYPE)
    .option("--out <file>", "write the envelope here instead of stdout")
    .option(
      "--bundle <out.json>",
      "also write a sigstore bundle v0.3 (public-key, offline) holding the envelope",
    )
    .action(action((predicate: string, opts: SignOptions) => signCommand(predicate, opts)));

  cmd
    .command("verify")
    .description(
      "Verify a DSSE envelope or sigstore bundle against trusted public keys; exit 0 valid, 1 not verified, 3 malformed",
    )
    .argument("<envelope>", "DSSE envelope JSON, or a sigstore bundle (detected by its mediaType)")
    .requiredOption(
      "--key <pub.pem>",
      "trusted PEM public key (a private key also works); repeatable",
      collect,
    )
    .option("--threshold <n>", "distinct trusted keys that must have signed", positiveInt, 1)
    .option("--payload-type <type>", "the payloadType to accept", IN_TOTO_PAYLOAD_TYPE)
    .option("--json", "print the result as JSON")
    .action(
      action((file: string, opts: VerifyOptions) => Promise.resolve().then(() => verifyCommand(file, opts))),
    );

  addRegistryOptions(
    cmd
      .command("attach")
      .description(
        "Publish signed documents (FuncProof, BinaryDiffV1, delta, richgraph, VEX; DSSE envelopes or sigstore " +
          "bundles) as OCI referrers of an image: one artifact manifest each, artifactType from the predicate " +
          "type, the sigstore bundle v0.3 as its layer. A richgraph envelope from the CAS takes its body along.",
      )
      .requiredOption("--image <REF>", "the image: registry/repo:tag or registry/repo@sha256:…")
      .requiredOption("--attestation <FILE>", "a DSSE envelope or sigstore bundle; repeatable", collect)
      .option("--body <FILE>", "a document the envelope commits to by digest, attached as a second layer")
      .option(
        "--tlog <URL>",
        "log each envelope in this Rekor v2 transparency log first (bundle keeps the proof)",
      )
      .option("--public-key <PUB.pem>", "the signer's public key, for --tlog")
      .option("--json", "print the referrers attached as JSON")
      .addHelpText(
        "after",
        "\nExamples:\n  stella attest attach --image registry.example/app:1.4 --attestation app.delta.dsse.json\n" +
          "  stella attest attach --image registry.example/app:1.4 --attestation cas/reachability/graphs/<hash>.dsse",
      ),
  ).action(action((opts: AttachOptions) => attachAttestations(opts)));

  cmd
    .command("trusted-root")
    .description(
      "Write a sigstore trusted root naming your Rekor v2 transparency log(s), for `stella verify --trusted-root`",
    )
    .requiredOption("--tlog-url <URL>", "the log's URL (must contain its origin)")
    .requiredOption(
      "--tlog-key <PUB.pem>",
      "the log's checkpoint-signing public key (Ed25519 or ECDSA P-256)",
    )
    .option(
      "--origin <ORIGIN>",
      "the log's checkpoint origin (its --hostname); default: host[:port] of the URL",
    )
    .option("--out <FILE>", "write here instead of stdout")
    .action(
      action((opts: TrustedRootOptions) =>
        Promise.resolve().then(() => {
          const origin = opts.origin ?? new URL(opts.tlogUrl).host;
          const root = makeTrustedRoot({
            tlogs: [{ baseUrl: opts.tlogUrl, publicKeyPem: readFileSync(opts.tlogKey, "utf8"), origin }],
          });
          const json = `${JSON.stringify(root, null, 2)}\n`;
          if (opts.out === undefined) printOut(json);
          else writeOutput(opts.out, json);
          return EXIT_OK;
        }),
      ),
    );
}

interface TrustedRootOptions {
  tlogUrl: string;
  tlogKey: string;
  origin?: string;
  out?: string;
}
