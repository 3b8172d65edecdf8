/**
 * materialsDelta, the dpkg status reader and the SBOM readers (CycloneDX JSON, SPDX 2.3 JSON).
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";

import { ArtifactError } from "../artifacts/common.ts";
import { run, workDir } from "../artifacts/test-packages.ts";
import type { PackageRef } from "./inputs.ts";
import { materialsDelta, packagesFromDpkgStatus, packagesFromSbom } from "./materials.ts";

let dir: string;
before(() => {
  dir = workDir("materials");
});

const pkg = (name: string, version: string, extra: Partial<PackageRef> = {}): PackageRef => ({
  name,
  version,
  source: "dpkg",
  ...extra,
});

describe("materialsDelta", () => {
  it("names added, removed and changed packages, sorted", () => {
    const base = [
      pkg("zlib1g", "1:1.2.13"),
      pkg("libc6", "2.36-9", { arch: "amd64" }),
      pkg("openssl", "3.0.20"),
    ];
    const target = [
      pkg("openssl", "3.0.22"),
      pkg("libssl3", "3.0.22"),
      pkg("libc6", "2.36-9", { arch: "amd64" }),
      pkg("ca-certificates", "2023"),
    ];
    const d = materialsDelta(base, target);
    assert.deepEqual(
      d.added.map((p) => p.name),
      ["ca-certificates", "libssl3"],
    );
    assert.deepEqual(
      d.removed.map((p) => p.name),
      ["zlib1g"],
    );
    assert.deepEqual(d.changed, [
      { name: "openssl", from: pkg("openssl", "3.0.20"), to: pkg("openssl", "3.0.22") },
    ]);
  });

  it("is deterministic whatever the input order", () => {
    const base = [pkg("b", "1"), pkg("a", "1"), pkg("c", "1")];
    const target = [pkg("d", "1"), pkg("c", "2"), pkg("e", "1")];
    assert.deepEqual(
      materialsDelta(base, target),
      materialsDelta([...base].reverse(), [...target].reverse()),
    );
  });

  it("keeps architectures apart and flags a digest change at the same version", () => {
    const base = [
      pkg("libc6", "2.36", { arch: "amd64" }),
      pkg("libc6", "2.36", { arch: "i386" }),
      pkg("x", "1", { digest: "sha256:" + "a".repeat(64) }),
    ];
    const target = [
      pkg("libc6", "2.36", { arch: "amd64" }),
      pkg("x", "1", { digest: "sha256:" + "b".repeat(64) }),
    ];
    const d = materialsDelta(base, target);
    assert.deepEqual(
      d.removed.map((p) => `${p.name}:${p.arch}`),
      ["libc6:i386"],
    );
    assert.deepEqual(
      d.changed.map((c) => c.name),
      ["x"],
    );
  });

  it("compares multi-version packages as sets of versions", () => {
    const base = [pkg("lib", "1"), pkg("lib", "2")];
    const target = [pkg("lib", "2"), pkg("lib", "3")];
    const d = materialsDelta(base, target);
    assert.deepEqual(
      d.added.map((p) => p.version),
      ["3"],
    );
    assert.deepEqual(
      d.removed.map((p) => p.version),
      ["1"],
    );
    assert.deepEqual(d.changed, []);
  });
});

describe("packagesFromDpkgStatus", () => {
  it("reads this machine's status as dpkg-query lists installed packages", () => {
    const pkgs = packagesFromDpkgStatus(readFileSync("/var/lib/dpkg/status", "utf8"), "/var/lib/dpkg/status");
    const oracle = run("dpkg-query", [
      "-W",
      "-f",
      "${db:Status-Status} ${Package} ${Version} ${Architecture}\\n",
    ])
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("installed "))
      .map((l) => l.slice("installed ".length))
      .sort();
    assert.deepEqual(pkgs.map((p) => `${p.name} ${p.version} ${p.arch}`).sort(), oracle);
  });

  it("skips packages that are not installed, and reads status.d-style files without Status", () => {
    const text =
      "Package: gone\nVersion: 1\nStatus: deinstall ok config-files\n\nPackage: here\nVersion: 2\nArchitecture: all\nStatus: install ok installed\n";
    assert.deepEqual(
      packagesFromDpkgStatus(text, "status").map((p) => p.name),
      ["here"],
    );
    assert.deepEqual(
      packagesFromDpkgStatus("Package: base-files\nVersion: 12.4\nArchitecture: amd64\n", "status.d/base"),
      [{ name: "base-files", version: "12.4", arch: "amd64", source: "dpkg" }],
    );
  });
});

describe("packagesFromSbom", () => {
  it("reads CycloneDX components (nested too) with purl arch and SHA-256", () => {
    const f = join(dir, "bom.cdx.json");
    writeFileSync(
      f,
      JSON.stringify({
        bomFormat: "CycloneDX",
        specVersion: "1.6",
        components: [
          {
            type: "library",
            name: "libssl3",
            version: "3.0.22-1~deb12u2",
            purl: "pkg:deb/debian/libssl3@3.0.22-1~deb12u2?arch=amd64&distro=debian-12",
            hashes: [{ alg: "SHA-256", content: "A".repeat(64) }],
            components: [{ type: "library", group: "org.example", name: "inner", version: "1.0" }],
          },
        ],
      }),
    );
    assert.deepEqual(packagesFromSbom(f), [
      {
        name: "libssl3",
        version: "3.0.22-1~deb12u2",
        arch: "amd64",
        digest: "sha256:" + "a".repeat(64),
        source: "sbom",
      },
      { name: "org.example/inner", version: "1.0", source: "sbom" },
    ]);
  });

  it("reads SPDX packages with checksums and purl references", () => {
    const f = join(dir, "bom.spdx.json");
    writeFileSync(
      f,
      JSON.stringify({
        spdxVersion: "SPDX-2.3",
        SPDXID: "SPDXRef-DOCUMENT",
        packages: [
          {
            SPDXID: "SPDXRef-zlib",
            name: "zlib1g",
            versionInfo: "1:1.2.13.dfsg-1",
            checksums: [{ algorithm: "SHA256", checksumValue: "b".repeat(64) }],
            externalRefs: [
              {
                referenceCategory: "PACKAGE-MANAGER",
                referenceType: "purl",
                referenceLocator: "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64",
              },
            ],
          },
        ],
      }),
    );
    assert.deepEqual(packagesFromSbom(f), [
      {
        name: "zlib1g",
        version: "1:1.2.13.dfsg-1",
        arch: "amd64",
        digest: "sha256:" + "b".repeat(64),
        source: "sbom",
      },
    ]);
  });

  it("refuses JSON that is neither, naming the file", () => {
    const f = join(dir, "other.json");
    writeFileSync(f, "{}");
    assert.throws(
      () => packagesFromSbom(f),
      (e: unknown) =>
        e instanceof ArtifactError && e.code === "ARTIFACT_UNKNOWN" && e.message.includes("other.json"),
    );
    const g = join(dir, "broken.json");
    writeFileSync(g, "{");
    assert.throws(
      () => packagesFromSbom(g),
      (e: unknown) =>
        e instanceof ArtifactError &&
        e.code === "ARTIFACT_MALFORMED" &&
        e.message.includes("broken.json: not valid JSON"),
    );
  });
});
