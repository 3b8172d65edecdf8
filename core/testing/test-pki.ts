// A throwaway PKI for TLS tests, made with the openssl CLI (an independent implementation): a CA, a
// server certificate for 127.0.0.1/localhost and a client certificate, all P-256, valid for a day.
// Writes ca.crt/ca.key, server.crt/server.key, client.crt/client.key into `dir`.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export function makeTestPki(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const ossl = (...args: string[]): void => {
    execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  ossl(
    "req",
    "-x509",
    ...ec,
    ...["-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=stella-test-ca"],
    ...["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
  );
  for (const [name, ext] of [
    ["server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"],
    ["client", "extendedKeyUsage=clientAuth\n"],
  ] as const) {
    writeFileSync(join(dir, `${name}.ext`), ext);
    ossl("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=stella-test-${name}`);
    ossl(
      "x509",
      "-req",
      ...["-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"],
      ...["-out", `${name}.crt`, "-days", "1", "-extfile", `${name}.ext`],
    );
  }
}
