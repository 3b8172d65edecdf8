import { closeSync, existsSync, fchmodSync, openSync, rmSync, writeSync } from "node:fs";

import { Option, type Command } from "commander";

import { canonicalJson } from "../../core/canonical-json.ts";
import { KEY_TYPES, KeyError, generateKeyPair, type KeyType } from "../../core/dsse/keys.ts";
import { action, printOut } from "../action.ts";
import { EXIT_OK } from "../exit-codes.ts";

interface KeygenOptions {
  type: KeyType;
  out: string;
  force?: boolean;
  json?: boolean;
}

/** Creates `path` afresh with `mode` (O_EXCL, so an existing file, or a symlink planted there, is never written through). */
function writeNew(path: string, data: string, mode: number, force: boolean): void {
  try {
    if (force) rmSync(path, { force: true });
    const fd = openSync(path, "wx", mode);
    try {
      fchmodSync(fd, mode); // the umask may have narrowed it; never widened
      writeSync(fd, data);
    } finally {
      closeSync(fd);
    }
  } catch (cause) {
    throw new KeyError("KEY_IO", `${path}: cannot write: ${(cause as Error).message}`, { cause });
  }
}

function keygenCommand(opts: KeygenOptions): number {
  const privatePath = `${opts.out}.key`;
  const publicPath = `${opts.out}.pub`;
  if (opts.force !== true) {
    for (const path of [privatePath, publicPath]) {
      if (existsSync(path))
        throw new KeyError("KEY_EXISTS", `${path}: already exists (use --force to replace it)`);
    }
  }
  const pair = generateKeyPair(opts.type);
  writeNew(privatePath, pair.privatePem, 0o600, opts.force === true);
  writeNew(publicPath, pair.publicPem, 0o644, opts.force === true);
  if (opts.json === true) {
    printOut(
      canonicalJson({ type: pair.type, keyid: pair.keyid, privateKey: privatePath, publicKey: publicPath }),
    );
  } else {
    printOut(pair.keyid);
    process.stderr.write(`wrote ${privatePath} (private, mode 0600) and ${publicPath}\n`);
  }
  return EXIT_OK;
}

export function registerKeygen(program: Command): void {
  program
    .command("keygen")
    .description(
      "Generate a signing key pair: PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (SPKI PEM); prints the keyid " +
        "(SHA-256 of the public key's DER SubjectPublicKeyInfo, lowercase hex)",
    )
    .addOption(new Option("--type <type>", "key type").choices(KEY_TYPES).default("ecdsa-p256"))
    .option("--out <prefix>", "output path prefix", "stella")
    .option("--force", "replace existing PREFIX.key / PREFIX.pub")
    .option("--json", "print {type, keyid, privateKey, publicKey} as JSON")
    .action(action((opts: KeygenOptions) => Promise.resolve().then(() => keygenCommand(opts))));
}
