/**
 * The .deb reader against dpkg-deb on real Debian packages: the data listing equals
 * `dpkg-deb --fsys-tarfile | tar -tv` (paths, types, sizes, modes), the control fields equal
 * `dpkg-deb -f`, content hashes equal extracted files, a debsig-style `_gpgorigin` signature member
 * (made with gpg) is kept, every compressor dpkg-deb offers is read, and hostile variants are refused.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";

import { diffEntries, openDeltaInput } from "../delta/inputs.ts";
import { ArtifactError } from "./common.ts";
import { type DebPackage, parseControlFile, readDeb } from "./deb.ts";
import { sha256 } from "./test-images.ts";
import { debFile, run, workDir } from "./test-packages.ts";

let deb: string;
let dir: string;
let pkg: DebPackage;

before(async () => {
  deb = debFile("libssl3=3.0.20-1~deb12u2");
  dir = workDir("deb");
  pkg = await readDeb(deb);
});

const TYPE: Record<string, string> = { "-": "file", d: "directory", l: "symlink", h: "link" };

/** `tar -tv` lines as `type mode size path[ -> target]`. */
function oracleListing(file: string): string[] {
  const tar = execFileSync("dpkg-deb", ["--fsys-tarfile", file], { maxBuffer: 256 << 20 });
  const lines = execFileSync("tar", ["-tv", "--numeric-owner", "--quoting-style=literal"], {
    input: tar,
    maxBuffer: 64 << 20,
  })
    .toString("utf8")
    .trim()
    .split("\n");
  const out: string[] = [];
  for (const l of lines) {
    const m = /^(.)(.{9}) \S+ +(\d+) \S+ \S+ (.*?)(?: -> (.*)| link to (.*))?$/.exec(l);
    assert.ok(m, l);
    const [, t = "", perms = "", size = "", name = "", sym, hard] = m;
    const path = name.replace(/^\.\/?/, "/").replace(/\/$/, "") || "/";
    if (path === "/") continue;
    const type = TYPE[t] ?? "other";
    out.push(
      `${type} ${permBits(perms).toString(8)} ${type === "file" ? size : 0} ${path}${sym ? " -> " + sym : hard ? " => " + hard : ""}`,
    );
  }
  return out;
}

function permBits(p: string): number {
  let n = 0;
  for (let i = 0; i < 9; i++) if (p[i] !== "-" && p[i] !== "S" && p[i] !== "T") n |= 1 << (8 - i);
  if (p[2] === "s" || p[2] === "S") n |= 0o4000;
  if (p[5] === "s" || p[5] === "S") n |= 0o2000;
  if (p[8] === "t" || p[8] === "T") n |= 0o1000;
  return n;
}

describe("readDeb on Debian packages", () => {
  it("lists data.tar as dpkg-deb --fsys-tarfile | tar -tv does", () => {
    const ours = pkg.dataEntries
      .filter((e) => e.path !== "/")
      .map(
        (e) =>
          `${e.type} ${e.mode.toString(8)} ${e.size} ${e.path}${e.type === "symlink" ? " -> " + (e.linkname ?? "") : e.type === "link" ? " => " + (e.linkname ?? "") : ""}`,
      );
    assert.deepEqual(ours, oracleListing(deb));
    assert.equal(pkg.dataMember, "data.tar.xz");
    assert.deepEqual(
      pkg.members.map((m) => m.name),
      run("ar", ["t", deb]).trim().split("\n"),
    );
  });

  it("reads the control fields dpkg-deb -f shows", () => {
    for (const field of ["Package", "Version", "Architecture", "Depends", "Multi-Arch"]) {
      assert.equal(pkg.control[field], run("dpkg-deb", ["-f", deb, field]).trim(), field);
    }
    assert.deepEqual(
      pkg.controlEntries.map((e) => e.path).filter((p) => p !== "/"),
      run("dpkg-deb", ["--ctrl-tarfile", deb]) === "" ? [] : listCtrl(deb),
    );
  });

  it("hashes content as dpkg-deb -x extracts it", () => {
    const x = join(dir, "x");
    run("dpkg-deb", ["-x", deb, x]);
    for (const e of pkg.dataEntries) {
      if (e.type !== "file") continue;
      assert.equal(e.sha256, sha256(readFileSync(join(x, e.path))), e.path);
    }
  });

  it("reads packages rebuilt by dpkg-deb -b with gzip, xz, zstd and none, to the same data listing", async () => {
    const root = join(dir, "rebuild");
    run("dpkg-deb", ["-R", deb, root]);
    const strip = (p: DebPackage): string =>
      JSON.stringify(
        p.dataEntries
          .filter((e) => e.path !== "/")
          .map((e) => [e.path, e.type, e.mode, e.size, e.sha256 ?? "", e.linkname ?? ""]),
      );
    const want = strip(pkg);
    for (const z of ["gzip", "xz", "zstd", "none"]) {
      const out = join(dir, `rebuilt-${z}.deb`);
      run("dpkg-deb", ["--root-owner-group", `-Z${z}`, "-b", root, out]);
      const p = await readDeb(out);
      assert.equal(p.dataCodec, z, out);
      assert.equal(strip(p), want, z);
      assert.equal(p.control.Version, "3.0.20-1~deb12u2");
    }
  });

  it("keeps a debsig _gpgorigin signature member made by gpg", async () => {
    const gnupg = join(dir, "gnupg");
    mkdirSync(gnupg, { mode: 0o700 });
    const env = { ...process.env, GNUPGHOME: gnupg };
    execFileSync(
      "gpg",
      [
        "--batch",
        "--passphrase",
        "",
        "--quick-gen-key",
        "stella-test@example.invalid",
        "ed25519",
        "sign",
        "never",
      ],
      { env, stdio: "ignore" },
    );
    const x = join(dir, "sig");
    mkdirSync(x);
    run("ar", ["x", deb], { cwd: x });
    const names = run("ar", ["t", deb]).trim().split("\n");
    const concat = Buffer.concat(names.map((n) => readFileSync(join(x, n))));
    const sig = execFileSync("gpg", ["--batch", "--armor", "--detach-sign"], { env, input: concat });
    writeFileSync(join(x, "_gpgorigin"), sig);
    const signed = join(dir, "signed.deb");
    run("ar", ["rc", signed, ...names, "_gpgorigin"], { cwd: x });
    const p = await readDeb(signed);
    const m = p.members.find((e) => e.name === "_gpgorigin");
    assert.ok(m);
    assert.equal(m.signature, true);
    assert.equal(m.sha256, sha256(sig));
    // …and normalisation lists it like any other member.
    const input = await openDeltaInput(signed);
    const e = input.entries.find((x) => x.path === "_gpgorigin");
    assert.equal(e?.sha256, sha256(sig));
    assert.deepEqual(
      diffEntries((await openDeltaInput(deb)).entries, input.entries).added.map((x) => x.path),
      ["_gpgorigin"],
    );
  });
});

function listCtrl(file: string): string[] {
  const tar = execFileSync("dpkg-deb", ["--ctrl-tarfile", file]);
  return execFileSync("tar", ["-t"], { input: tar })
    .toString("utf8")
    .trim()
    .split("\n")
    .map((n) => n.replace(/^\.\/?/, "/").replace(/\/$/, "") || "/")
    .filter((p) => p !== "/");
}

describe("readDeb refuses hostile packages", () => {
  function expectError(p: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
    return assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof ArtifactError, String(err));
      assert.equal(err.code, code, err.message);
      assert.match(err.message, pattern);
      return true;
    });
  }

  /** A .deb assembled by ar from the original's members with data.tar.xz replaced. */
  function withData(name: string, data: Buffer, member = "data.tar.xz"): string {
    const x = join(dir, name);
    mkdirSync(x);
    run("ar", ["x", deb], { cwd: x });
    for (const f of readdirSync(x)) if (f.startsWith("data.tar")) writeFileSync(join(x, f), "");
    writeFileSync(join(x, member), data);
    const out = join(dir, `${name}.deb`);
    run("ar", ["rc", out, "debian-binary", "control.tar.xz", member], { cwd: x });
    return out;
  }

  it('a data.tar member named "../x"', async () => {
    const t = join(dir, "trav");
    mkdirSync(t);
    const tarFile = join(t, "data.tar");
    run("python3", [
      "-c",
      `import tarfile, io\nwith tarfile.open(${JSON.stringify(tarFile)}, "w") as t:\n    i = tarfile.TarInfo("../x"); d = b"escape"; i.size = len(d); t.addfile(i, io.BytesIO(d))`,
    ]);
    const xz = execFileSync("xz", ["-c", tarFile]);
    await expectError(
      readDeb(withData("traversal", xz)),
      "ARTIFACT_MALFORMED",
      /traversal\.deb: data\.tar\.xz: member "\.\.\/x" has a "\.\." component/,
    );
  });

  it("a truncated data.tar.xz", async () => {
    const x = join(dir, "orig");
    mkdirSync(x);
    run("ar", ["x", deb], { cwd: x });
    const data = readFileSync(join(x, "data.tar.xz"));
    await expectError(
      readDeb(withData("cutxz", data.subarray(0, data.length >> 1))),
      "ARTIFACT_MALFORMED",
      /cutxz\.deb: data\.tar\.xz: cannot decompress \(xz\)/,
    );
  });

  it("a data.tar that decompresses past the limit", async () => {
    await expectError(
      readDeb(deb, { maxBytes: 3_000_000 }),
      "ARTIFACT_TOO_LARGE",
      /data\.tar\.xz: decompresses to more than the limit of 3000000 bytes/,
    );
  });

  it("a first member other than debian-binary", async () => {
    const x = join(dir, "order");
    mkdirSync(x);
    run("ar", ["x", deb], { cwd: x });
    const out = join(dir, "order.deb");
    run("ar", ["rc", out, "control.tar.xz", "debian-binary", "data.tar.xz"], { cwd: x });
    await expectError(
      readDeb(out),
      "ARTIFACT_MALFORMED",
      /order\.deb: first ar member is "control\.tar\.xz", expected debian-binary/,
    );
  });
});

describe("parseControlFile", () => {
  it("reads this machine's dpkg status", () => {
    const paras = parseControlFile(readFileSync("/var/lib/dpkg/status", "utf8"), "status");
    const oracle = run("dpkg-query", ["-W", "-f", "${Package}\\n"]).trim().split("\n");
    const names = new Set(paras.map((p) => p.Package));
    for (const n of oracle) assert.ok(names.has(n), n);
  });
});
