// Throw-away certificates for a local control plane, made with the openssl CLI exactly like e2e/tools/smoke.sh:
// a CA, the API server's serving certificate, an admin client certificate (O=system:masters) and the RSA key pair that
// signs ServiceAccount tokens. The four RSA keys, then the leaves, are made in parallel (explicit random serials instead
// of -CAcreateserial, which would race on ca.srl).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

export interface Pki {
  dir: string;
  caCrt: string;
  caKey: string;
  apiserverCrt: string;
  apiserverKey: string;
  adminCrt: string;
  adminKey: string;
  /** ServiceAccount token signing key (private) and its public half. */
  saKey: string;
  saPub: string;
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  try {
    await execFileP("openssl", args, { cwd });
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr ?? "";
    throw new Error(`openssl ${args.join(" ")} failed in ${cwd}: ${(e as Error).message}\n${stderr}`, {
      cause: e,
    });
  }
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f; // positive
  return `0x${b.toString("hex")}`;
}

async function leaf(dir: string, name: string, subject: string, ext: string[], days: number): Promise<void> {
  await openssl(dir, ["req", "-new", "-key", `${name}.key`, "-out", `${name}.csr`, "-subj", subject]);
  await writeFile(join(dir, `${name}.ext`), ext.join("\n") + "\n");
  await openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-set_serial",
    serial(),
    "-days",
    String(days),
    "-extfile",
    `${name}.ext`,
    "-out",
    `${name}.crt`,
  ]);
}

export async function makePki(dir: string, days = 365): Promise<Pki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // RSA key generation dominates (0.2-0.4 s each): all four keys at once, then the (fast) certificates.
  await Promise.all(
    ["ca", "apiserver", "admin", "sa"].map((k) =>
      openssl(dir, ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", `${k}.key`]),
    ),
  );
  await openssl(dir, [
    "req",
    "-x509",
    "-key",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    String(days),
    "-subj",
    "/CN=stella-e2e-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  await Promise.all([
    leaf(
      dir,
      "apiserver",
      "/CN=kube-apiserver",
      [
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
      ],
      days,
    ),
    // O=system:masters is bound to cluster-admin and bypasses RBAC.
    leaf(
      dir,
      "admin",
      "/O=system:masters/CN=stella-e2e-admin",
      ["keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=clientAuth"],
      days,
    ),
    openssl(dir, ["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"]),
  ]);
  return pkiPaths(dir);
}

export function pkiPaths(dir: string): Pki {
  const p = (f: string): string => join(dir, f);
  return {
    dir,
    caCrt: p("ca.crt"),
    caKey: p("ca.key"),
    apiserverCrt: p("apiserver.crt"),
    apiserverKey: p("apiserver.key"),
    adminCrt: p("admin.crt"),
    adminKey: p("admin.key"),
    saKey: p("sa.key"),
    saPub: p("sa.pub"),
  };
}
