// Test helpers: the independent verifiers core/dsse is checked against (OpenSSL, Python securesystemslib).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

import { run, type RunResult } from "../../testing/run.ts";
import type { KeyType } from "../keys.ts";

const HERE = import.meta.dirname;
export const VENV_PYTHON = resolve(HERE, "../../../.tools/venv/bin/python");
export const VERIFY_DSSE_PY = join(HERE, "verify_dsse.py");
const REQUIREMENTS = join(HERE, "requirements.txt");

/** The venv's python, or a failure that says how to make it (CI: .ci/run). */
export function venvPython(): string {
  if (!existsSync(VENV_PYTHON)) {
    throw new Error(
      `${VENV_PYTHON} is missing: the DSSE interop tests need securesystemslib. Create it with:\n` +
        `  python3 -m venv .tools/venv && .tools/venv/bin/pip install -r ${REQUIREMENTS}`,
    );
  }
  return VENV_PYTHON;
}

/** Runs verify_dsse.py (see its docstring). */
export function pythonDsse(args: string[]): Promise<RunResult> {
  return run(venvPython(), [VERIFY_DSSE_PY, ...args]);
}

/**
 * OpenSSL's verdict on `sig` over `data` with the PEM public key, written to files as a user would:
 * `openssl dgst -sha256|-sha384|-sha512 -verify` for ECDSA (DER signature), `openssl pkeyutl -verify
 * -rawin` for Ed25519.
 */
export async function opensslVerify(
  dir: string,
  type: KeyType,
  publicPem: string,
  data: Uint8Array,
  sig: Uint8Array,
): Promise<RunResult> {
  const pub = join(dir, "pub.pem");
  const pae = join(dir, "pae.bin");
  const sigFile = join(dir, "sig.der");
  writeFileSync(pub, publicPem);
  writeFileSync(pae, data);
  writeFileSync(sigFile, sig);
  if (type === "ed25519") {
    return run("openssl", [
      "pkeyutl",
      "-verify",
      "-rawin",
      "-pubin",
      "-inkey",
      pub,
      "-sigfile",
      sigFile,
      "-in",
      pae,
    ]);
  }
  const digest = { "ecdsa-p256": "-sha256", "ecdsa-p384": "-sha384", "ecdsa-p521": "-sha512" }[type];
  return run("openssl", ["dgst", digest, "-verify", pub, "-signature", sigFile, pae]);
}

/** A fresh temporary directory, removed by the returned function. */
export function tempDir(prefix = "stella-dsse-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const CLI_MAIN = resolve(HERE, "../../../cli/main.ts");

/**
 * Runs `stella …args` through `main` from cli/main.ts, in a child Node (the same binary as the test's),
 * so stdout, stderr and the exit code are the real ones: replacing process.stdout.write inside a
 * node:test file would also swallow the test runner's own event stream.
 */
export function runStella(args: string[]): Promise<RunResult> {
  const script =
    `import { main } from ${JSON.stringify(pathToFileURL(CLI_MAIN).href)};\n` +
    `process.exitCode = await main(["node", "stella", ...process.argv.slice(1)]);`;
  return run(process.execPath, ["--input-type=module", "-e", script, "--", ...args]);
}
