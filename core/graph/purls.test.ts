import assert from "node:assert/strict";
import { test } from "node:test";

import { debPurls, isPurlSource } from "./purls.ts";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

test("dpkg lists and status give each installed path its package URL; removed packages give none", () => {
  const files = new Map<string, Uint8Array>([
    ["/etc/os-release", enc('PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\nVERSION_ID="12"\n')],
    [
      "/var/lib/dpkg/status",
      enc(
        [
          "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13.dfsg-1\n",
          "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.17-1~deb12u2\n",
          "Package: old\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n",
          "Package: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n",
        ].join("\n"),
      ),
    ],
    [
      "/var/lib/dpkg/info/zlib1g:amd64.list",
      enc("/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libz.so.1.2.13\n"),
    ],
    ["/var/lib/dpkg/info/libssl3:amd64.list", enc("/usr/lib/x86_64-linux-gnu/libcrypto.so.3\n")],
    ["/var/lib/dpkg/info/old:amd64.list", enc("/usr/bin/old\n")],
    ["/var/lib/dpkg/info/tzdata.list", enc("/usr/share/zoneinfo/UTC\n")],
  ]);
  assert.ok([...files.keys()].every(isPurlSource));
  assert.equal(isPurlSource("/var/lib/dpkg/info/zlib1g:amd64.md5sums"), false);
  const purls = debPurls(files);
  assert.equal(
    purls.get("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"),
    "pkg:deb/debian/libssl3@3.0.17-1~deb12u2?arch=amd64",
  );
  // Epoch colon kept, '+' would be %2B; merged /usr finds the file under both spellings.
  assert.equal(
    purls.get("/lib/x86_64-linux-gnu/libz.so.1.2.13"),
    "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64",
  );
  assert.equal(
    purls.get("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"),
    "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64",
  );
  assert.equal(purls.get("/usr/share/zoneinfo/UTC"), "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all");
  assert.equal(purls.get("/usr/bin/old"), undefined, "not installed");
  assert.equal(
    purls.get("/lib"),
    "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64",
    "directories are listed too",
  );
});

test("no database: no purls", () => {
  assert.equal(debPurls(new Map()).size, 0);
});
