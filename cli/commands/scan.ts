import { writeFileSync } from "node:fs";

import type { Command } from "commander";

import { openArtifact } from "../../core/artifacts/artifact.ts";
import {
  BINARYDIFF_PREDICATE_TYPE,
  binaryDiff,
  type BinaryDiffV1,
} from "../../core/binarydiff/binarydiff.ts";
import { canonicalJson } from "../../core/canonical-json.ts";
import { attest } from "../../core/dsse/attest.ts";
import { DEFAULT_MAX_SECTION_BYTES, DEFAULT_SECTIONS } from "../../core/funcproof/funcproof.ts";
import { action, printOut } from "../action.ts";
import { EXIT_OK } from "../exit-codes.ts";
import { collect, createdAt, parseByteSize, parseSections, progress, signersFrom } from "../options.ts";
import { VERSION } from "../version.ts";

interface DiffOptions {
  base: string;
  target: string;
  json?: boolean;
  sign?: string[];
  out?: string;
  sections: string[];
  maxSectionSize: number;
  createdAt?: string;
}

export function registerScan(program: Command): void {
  const scan = program.command("scan").description("Scan artifacts for binary-level evidence");
  scan
    .command("diff")
    .description(
      "Compare the ELF binaries of two releases and emit a BinaryDiffV1 predicate.\n" +
        "A and B are each an ELF file, a directory tree, an OCI image layout, or an image tarball\n" +
        "(docker save / OCI archive: layers applied in order, whiteouts honoured).",
    )
    .requiredOption("--base <A>", "the earlier release")
    .requiredOption("--target <B>", "the later release")
    .option("--json", "print the predicate (or, with --sign, the envelope) as canonical JSON")
    .option(
      "--sign <KEY.pem>",
      "sign as a DSSE in-toto statement, predicate stellaops.binarydiff.v1 (repeatable)",
      collect,
    )
    .option("--out <FILE>", "write the predicate (or the envelope, when signed) to FILE")
    .option("--sections <LIST>", "sections to compare, comma-separated", parseSections, DEFAULT_SECTIONS)
    .option(
      "--max-section-size <BYTES>",
      "skip hashing sections larger than this",
      parseByteSize,
      DEFAULT_MAX_SECTION_BYTES,
    )
    .option(
      "--created-at <RFC3339>",
      "timestamp recorded in metadata (default: SOURCE_DATE_EPOCH, else none)",
    )
    .addHelpText(
      "after",
      "\nExample:\n  stella scan diff --base app-1.0.tar --target app-1.1.tar --sign release.key --out diff.dsse.json",
    )
    .action(action(async (opts: DiffOptions) => diffCommand(opts)));
}

async function diffCommand(opts: DiffOptions): Promise<number> {
  const signers = signersFrom(opts.sign);
  const bar = progress("diff");
  const onProgress = (done: number, total: number): void => {
    bar.update(done, total, "reading");
  };
  const base = await openArtifact(opts.base, { onProgress });
  const target = await openArtifact(opts.target, { onProgress });
  const at = createdAt(opts.createdAt);
  const doc = binaryDiff(base, target, {
    tool: "stella",
    toolVersion: VERSION,
    sections: opts.sections,
    maxSectionBytes: opts.maxSectionSize,
    ...(at !== undefined ? { createdAt: at } : {}),
    onFile: (done, total, path) => {
      bar.update(done, total, path);
    },
  });
  bar.stop();

  let output: unknown = doc;
  if (signers.length > 0) {
    output = await attest({
      subjects: doc.subjects,
      predicateType: BINARYDIFF_PREDICATE_TYPE,
      predicate: doc as unknown as Record<string, unknown>,
      signers,
    });
  }
  const text = `${canonicalJson(output)}\n`;
  if (opts.out !== undefined) writeFileSync(opts.out, text);
  if (opts.json === true) printOut(text);
  else if (opts.out === undefined && signers.length > 0) printOut(text);
  else printOut(summary(doc));
  return EXIT_OK;
}

function summary(d: BinaryDiffV1): string {
  const s = d.metadata.summary;
  const lines = [
    `${d.inputs.base.name} → ${d.inputs.target.name}: ${s.binaries} binaries, ${s.modified} modified, ${s.added} added, ${s.removed} removed, ${s.unchanged} unchanged`,
  ];
  for (const f of d.findings) {
    if (f.changeType === "unchanged") continue;
    const fc = f.functionsChanged;
    lines.push(
      `  ${f.changeType.padEnd(8)} ${f.path}  verdict=${f.verdict} (${f.confidence.toFixed(2)})  functions: ${fc.modified.length} modified, ${fc.added.length} added, ${fc.removed.length} removed`,
    );
    for (const m of fc.modified.slice(0, 10)) lines.push(`      ~ ${m}`);
    for (const a of fc.added.slice(0, 10)) lines.push(`      + ${a}`);
    for (const r of fc.removed.slice(0, 10)) lines.push(`      - ${r}`);
  }
  return lines.join("\n");
}
