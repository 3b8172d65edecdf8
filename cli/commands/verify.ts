// `stella verify --image` (the auditor's replay) and `stella export --image` (its air-gap bundle).
import { readFileSync } from "node:fs";

import type { Command } from "commander";

import { canonicalJson } from "../../core/canonical-json.ts";
import { loadPublicKeyFile } from "../../core/dsse/keys.ts";
import { verifyImage, type BinaryReport, type ImageVerification } from "../../core/evidence/verify-image.ts";
import { Blake3 } from "../../core/hash/digest.ts";
import { exportImage, layoutSource, registrySource } from "../../core/oci/evidence-source.ts";
import { parseReference } from "../../core/oci/reference.ts";
import { parseTrustedRoot } from "../../core/tlog/trusted-root.ts";
import { action, printOut } from "../action.ts";
import { EXIT_OK, EXIT_USAGE, EXIT_VERIFY_FAILED } from "../exit-codes.ts";
import { collect, progress } from "../options.ts";
import { addRegistryOptions, registryTarget, type RegistryFlags } from "../registry.ts";

interface VerifyOptions extends RegistryFlags {
  image: string;
  offline?: string;
  key?: string[];
  trustedRoot?: string;
  json?: boolean;
}

interface ExportOptions extends RegistryFlags {
  image: string;
  out: string;
  json?: boolean;
}

export function registerVerify(program: Command): void {
  addRegistryOptions(
    program
      .command("verify")
      .description(
        "Replay an image's evidence: pull every referrer (or read them from an exported directory), verify " +
          "each signature and transparency-log inclusion proof, re-extract the image's ELF files and recompute " +
          "every FuncProof section and function hash, check graph hashes, VEX documents and the SBOM. " +
          "Exit 0 when every binary verifies, 1 when anything fails (each failure is named).",
      )
      .requiredOption("--image <REF>", "the image: registry/repo:tag or registry/repo@sha256:…")
      .option("--offline <DIR>", "read the image and its evidence from `stella export` output; no network")
      .option("--key <PUB.pem>", "a signer's public key (repeatable)", collect)
      .option(
        "--trusted-root <FILE>",
        "sigstore trusted root (transparency logs): every referrer must carry a verified inclusion proof",
      )
      .option("--json", "print the whole verification as JSON")
      .addHelpText(
        "after",
        "\nExamples:\n  stella verify --image registry.example/app:1.4 --key release.pub\n" +
          "  stella verify --image registry.example/app:1.4 --offline ./app-evidence --key release.pub --trusted-root root.json",
      ),
  ).action(action(async (opts: VerifyOptions) => verifyCommand(opts)));

  addRegistryOptions(
    program
      .command("export")
      .description(
        "Write an image and every referrer of it (signed evidence, SBOM) into an OCI image layout directory: " +
          "the air-gap bundle `stella verify --image REF --offline DIR` runs on.",
      )
      .requiredOption("--image <REF>", "the image: registry/repo:tag or registry/repo@sha256:…")
      .requiredOption("--out <DIR>", "output directory (an OCI image layout)")
      .option("--json", "print what was exported as JSON"),
  ).action(action(async (opts: ExportOptions) => exportCommand(opts)));
}

async function verifyCommand(opts: VerifyOptions): Promise<number> {
  const keys = (opts.key ?? []).map((k) => loadPublicKeyFile(k));
  if (keys.length === 0 && opts.trustedRoot === undefined) {
    process.stderr.write("stella: usage: verify needs --key PUB.pem and/or --trusted-root FILE\n");
    return EXIT_USAGE;
  }
  const trustedRoot =
    opts.trustedRoot === undefined
      ? undefined
      : parseTrustedRoot(readFileSync(opts.trustedRoot, "utf8"), opts.trustedRoot);
  let source;
  if (opts.offline !== undefined) {
    const ref = parseReference(opts.image);
    source = await layoutSource(opts.offline, ref.digest ?? ref.tag);
  } else {
    const t = registryTarget(opts.image, opts);
    source = await registrySource(t.client, t.ref.repository, t.manifestRef);
  }
  const bar = progress("verify");
  let result;
  try {
    result = await verifyImage(source, {
      keys,
      ...(trustedRoot === undefined ? {} : { trustedRoot }),
      blake3: await Blake3.create(),
      onProgress: (stage, done, total, what) => {
        bar.update(done, total, `${stage}: ${what}`);
      },
    });
  } finally {
    bar.stop();
    await source.close();
  }
  printOut(opts.json === true ? canonicalJson(result) : describe(result));
  return result.verdict === "pass" ? EXIT_OK : EXIT_VERIFY_FAILED;
}

function binaryLine(b: BinaryReport): string {
  switch (b.verdict) {
    case "verified":
      return `  ok        ${b.path}  (${b.checked.sections} sections, ${b.checked.functions} functions replayed)`;
    case "unattested":
      return `  MISSING   ${b.path}: ${b.reasons.join("; ")}`;
    case "mismatch": {
      const shown = b.reasons.slice(0, 8).map((r) => `\n              ${r}`);
      const more = b.reasons.length > 8 ? `\n              … ${b.reasons.length - 8} more (see --json)` : "";
      return `  MISMATCH  ${b.path}:${shown.join("")}${more}`;
    }
  }
}

function describe(v: ImageVerification): string {
  const lines = [`image ${v.image.digest} (${v.image.where})`];
  const refused = v.referrers.filter((r) => r.status === "refused");
  const logged = v.referrers.filter((r) => r.tlog.length > 0).length;
  lines.push(
    `referrers: ${v.referrers.length} (${v.referrers.length - refused.length} verified, ${refused.length} refused` +
      `${logged > 0 ? `, ${logged} with verified inclusion proofs` : ""})`,
  );
  for (const r of refused) lines.push(`  REFUSED   ${r.digest} ${r.artifactType}: ${r.reasons.join("; ")}`);
  lines.push(`binaries: ${v.binaries.length}`);
  for (const b of v.binaries) lines.push(binaryLine(b));
  for (const g of v.graphs) {
    lines.push(
      `graph ${g.graphHash}: ${g.reasons.length === 0 ? "ok" : g.reasons.join("; ")} (${g.nodesChecked} nodes cross-checked)`,
    );
  }
  for (const x of v.vex) {
    const st = x.statements.map((s) => `${s.vulnerability}=${s.status}`).join(", ");
    lines.push(`VEX ${x.referrer}: ${x.reasons.length === 0 ? "ok" : x.reasons.join("; ")} (${st})`);
  }
  for (const s of v.sbom) {
    lines.push(
      `SBOM ${s.referrer}: ${s.reasons.length === 0 ? "ok" : s.reasons.join("; ")} (${s.components} file components)`,
    );
  }
  lines.push(
    `verdict: ${v.verdict.toUpperCase()}${v.reasons.length > 0 ? `: ${v.reasons.join("; ")}` : ""}` +
      `  [referrers ${v.timings.referrersMs} ms, image ${v.timings.imageMs} ms, replay ${v.timings.replayMs} ms, total ${v.timings.totalMs} ms]`,
  );
  return lines.join("\n");
}

async function exportCommand(opts: ExportOptions): Promise<number> {
  const t = registryTarget(opts.image, opts);
  const r = await exportImage(t.client, t.ref.repository, t.manifestRef, opts.out);
  if (opts.json === true) printOut(canonicalJson({ image: t.display, out: opts.out, ...r }));
  else
    printOut(
      `${t.display}@${r.digest}: wrote the image and ${r.referrers} referrer(s), ${r.bytes} bytes, to ${opts.out}`,
    );
  return EXIT_OK;
}
