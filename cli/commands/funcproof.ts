import { mkdirSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";

import type { Command } from "commander";

import { openArtifact } from "../../core/artifacts/artifact.ts";
import { canonicalJson } from "../../core/canonical-json.ts";
import { attest } from "../../core/dsse/attest.ts";
import type { Envelope } from "../../core/dsse/envelope.ts";
import {
  buildFuncProof,
  DEFAULT_MAX_SECTION_BYTES,
  DEFAULT_SECTIONS,
  FUNCPROOF_PREDICATE_TYPE,
  type FuncProof,
} from "../../core/funcproof/funcproof.ts";
import { Blake3 } from "../../core/hash/digest.ts";
import { action, printOut } from "../action.ts";
import { EXIT_OK, EXIT_USAGE } from "../exit-codes.ts";
import { funcProofResource, toYaml } from "../funcproof-cr.ts";
import { collect, parseByteSize, parseSections, progress, signersFrom } from "../options.ts";
import { VERSION } from "../version.ts";
import { pushFuncproofs } from "./publish.ts";

interface FuncproofOptions {
  json?: boolean;
  emitCr?: boolean;
  out?: string;
  sign?: string[];
  sections: string[];
  blake3?: boolean;
  maxSectionSize: number;
  push?: boolean;
  tlog?: string;
  sbom: boolean;
  plainHttp?: boolean;
}

export function registerFuncproof(program: Command): void {
  program
    .command("funcproof")
    .description(
      "Prove what is inside ELF binaries: BuildID, per-section and per-function hashes (raw and normalised). " +
        "FILE may be an ELF file, a directory, an OCI image layout or an image tarball (every ELF inside).",
    )
    .argument("<FILE...>", "ELF files or artifacts")
    .option("--json", "print the FuncProof document(s) as canonical JSON (an array for several files)")
    .option("--out <DIR>", "write <name>.funcproof.json (and .funcproof.dsse.json when signed) per binary")
    .option(
      "--sign <KEY.pem>",
      "wrap each FuncProof in a DSSE-signed in-toto statement (repeatable)",
      collect,
    )
    .option("--sections <LIST>", "sections to hash, comma-separated", parseSections, DEFAULT_SECTIONS)
    .option("--blake3", "also record BLAKE3-256 of the file and of each section")
    .option(
      "--emit-cr",
      "write FuncProof custom resources (needs --sign): <name>.funcproof.cr.yaml in --out, else stdout; " +
        "apply with `kubectl apply --server-side` (large envelopes exceed client-side apply's annotation limit)",
    )
    .option(
      "--max-section-size <BYTES>",
      "skip hashing sections larger than this (K/M/G)",
      parseByteSize,
      DEFAULT_MAX_SECTION_BYTES,
    )
    .option(
      "--push",
      "FILE is a registry image (registry/repo:tag): attach a signed FuncProof referrer for every ELF in it, " +
        "and a CycloneDX SBOM linking each file to its FuncProof (needs one --sign)",
    )
    .option("--tlog <URL>", "with --push: log each envelope in this Rekor v2 transparency log first")
    .option("--no-sbom", "with --push: no CycloneDX SBOM referrer")
    .option(
      "--plain-http",
      "with --push: plain HTTP to the registry (default only for localhost and 127.0.0.0/8)",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  stella funcproof /usr/lib/x86_64-linux-gnu/libcrypto.so.3 --json\n  stella funcproof ./app --sign cosign.key --out evidence/\n" +
        "  stella funcproof registry.example/app:1.4 --push --sign release.key",
    )
    .action(action(async (files: string[], opts: FuncproofOptions) => funcproofCommand(files, opts)));
}

async function funcproofCommand(inputs: string[], opts: FuncproofOptions): Promise<number> {
  if (opts.emitCr === true && (opts.sign ?? []).length === 0) {
    process.stderr.write(
      "stella: --emit-cr needs --sign KEY.pem: a FuncProof resource carries its signed envelope\n",
    );
    return EXIT_USAGE;
  }
  const blake3 = opts.blake3 === true ? await Blake3.create() : undefined;
  if (opts.push === true) {
    const [image, ...more] = inputs;
    if (image === undefined || more.length > 0 || opts.out !== undefined || opts.emitCr === true) {
      process.stderr.write("stella: usage: --push takes one registry image and no --out/--emit-cr\n");
      return EXIT_USAGE;
    }
    return pushFuncproofs(image, opts, blake3);
  }
  const signers = signersFrom(opts.sign);
  const bar = progress("funcproof");
  const proofs: { proof: FuncProof; outName: string }[] = [];
  for (const input of inputs) {
    const artifact = await openArtifact(input);
    const single = artifact.kind === "elf";
    for (const [i, file] of artifact.files.entries()) {
      bar.update(i, artifact.files.length, file.path);
      const name = single ? basename(input) : file.path;
      const src = file.open();
      try {
        const proof = buildFuncProof(src, {
          name,
          tool: `stella ${VERSION}`,
          sections: opts.sections,
          maxSectionBytes: opts.maxSectionSize,
          ...(blake3 ? { blake3 } : {}),
        });
        proofs.push({
          proof,
          outName: single ? basename(input) : file.path.replace(/^\/+/, "").replaceAll("/", "_"),
        });
      } finally {
        src.close();
      }
    }
  }
  bar.stop();

  const envelopes: Envelope[] = [];
  if (signers.length > 0) {
    for (const { proof } of proofs) {
      envelopes.push(
        await attest({
          subjects: [{ name: proof.file.name, digest: { sha256: proof.file.sha256 } }],
          predicateType: FUNCPROOF_PREDICATE_TYPE,
          predicate: proof as unknown as Record<string, unknown>,
          signers,
        }),
      );
    }
  }

  if (opts.out !== undefined) {
    mkdirSync(opts.out, { recursive: true });
    for (const [i, { proof, outName }] of proofs.entries()) {
      const path = join(opts.out, `${outName}.funcproof.json`);
      writeFileSync(path, `${canonicalJson(proof)}\n`);
      const env = envelopes[i];
      if (env) writeFileSync(join(opts.out, `${outName}.funcproof.dsse.json`), `${canonicalJson(env)}\n`);
    }
  }

  if (opts.emitCr === true) {
    const resources = proofs.flatMap(({ proof, outName }, i) => {
      const env = envelopes[i];
      return env ? [{ outName, cr: funcProofResource(proof, env, `${outName}.funcproof.dsse.json`) }] : [];
    });
    const inline = resources.every((r) => r.cr.spec.envelope !== undefined);
    if (opts.out !== undefined) {
      for (const { outName, cr } of resources)
        writeFileSync(join(opts.out, `${outName}.funcproof.cr.yaml`), toYaml([cr]));
    } else if (!inline) {
      process.stderr.write(
        "stella: an envelope is too large to inline; use --out DIR so it is written next to the resource\n",
      );
      return EXIT_USAGE;
    } else {
      printOut(toYaml(resources.map((r) => r.cr)));
    }
    return EXIT_OK;
  }

  if (opts.json === true) {
    const docs = signers.length > 0 ? envelopes : proofs.map((p) => p.proof);
    printOut(canonicalJson(docs.length === 1 ? docs[0] : docs));
  } else if (signers.length > 0 && opts.out === undefined) {
    for (const env of envelopes) printOut(canonicalJson(env));
  } else {
    for (const { proof } of proofs) printOut(summary(proof));
    if (opts.out !== undefined) process.stderr.write(`wrote ${proofs.length} FuncProof(s) to ${opts.out}\n`);
  }
  return EXIT_OK;
}

function summary(p: FuncProof): string {
  const secs = Object.entries(p.sections)
    .map(([n, s]) => `${n}=${s.sha256?.slice(0, 12) ?? "skipped"}`)
    .join(" ");
  return `${p.file.name}  buildId=${p.buildId ?? "-"}  ${p.arch}  ${p.functions.length} functions (${p.meta.functionSource})  ${secs}`;
}
