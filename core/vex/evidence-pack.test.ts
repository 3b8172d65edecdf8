import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { evidenceMarkdown, evidenceSentence, windowPhrase } from "./evidence-pack.ts";
import { AFFECTED, NOT_IN_PATH, NOT_PRESENT } from "./testdata.ts";

describe("evidence pack", () => {
  test("affected: the seed's sentence, exactly", () => {
    assert.equal(
      evidenceSentence(AFFECTED),
      "CVE-2024-1234 observed in stella_hot (BuildID 03d4…), 17.3% of CPU in shop/apigw-0 between 12:00 and 14:00 UTC; VEX → affected",
    );
  });

  test("not in execute path, across midnight: dates are shown", () => {
    assert.equal(
      evidenceSentence(NOT_IN_PATH),
      "CVE-2024-1234: stella_hot, stella_cold not observed in 52000 samples of sha256:abababababab… between 2024-04-30 14:00 and 2024-05-01 14:00 UTC; VEX → not_affected (vulnerable_code_not_in_execute_path)",
    );
  });

  test("not present names the searched BuildIDs and prefers the purl", () => {
    assert.equal(
      evidenceSentence(NOT_PRESENT),
      "CVE-2024-1234: stella_hot, stella_cold absent from the FuncProofs of pkg:deb/debian/openssl@3.0.11-1 (BuildID 03d4…); VEX → not_affected (vulnerable_code_not_present)",
    );
  });

  test("long lists are cut after three", () => {
    const d = {
      ...AFFECTED,
      evidence: {
        ...AFFECTED.evidence,
        pods: ["a/p1", "a/p2", "a/p3", "a/p4", "a/p5"],
        buildIds: ["aaaa1", "bbbb2"],
      },
    };
    assert.match(
      evidenceSentence(d),
      /\(BuildIDs aaaa…, bbbb…\), 17\.3% of CPU in a\/p1, a\/p2, a\/p3 and 2 more /,
    );
  });

  test("windowPhrase", () => {
    assert.equal(
      windowPhrase({ windowStartMs: Date.UTC(2024, 0, 1, 9, 5), windowEndMs: Date.UTC(2024, 0, 1, 10, 5) }),
      "between 09:05 and 10:05 UTC",
    );
  });

  test("markdown: sentence, table, stacks, pods, nodes, BuildIDs", () => {
    const md = evidenceMarkdown(AFFECTED);
    assert.ok(md.startsWith("# CVE-2024-1234: affected\n\nCVE-2024-1234 observed in stella_hot"));
    assert.match(md, /\| vulnerability \| CVE-2024-1234 \(GHSA-abcd-efgh-ijkl\) \|/);
    assert.match(md, /\| samples \| 173 of 1000 \(17\.3% of CPU\) \|/);
    assert.match(md, /\| window \| 2024-05-01T12:00:00Z – 2024-05-01T14:00:00Z \|/);
    assert.match(md, /- `stella_hot`: 173 samples\n- `stella_cold`: 0 samples/);
    assert.match(
      md,
      /```\n {5}150 {2}stella_hot;handle_request;main\n {6}23 {2}stella_hot;worker;start_thread\n```/,
    );
    assert.match(md, /## Pods\n\n- `shop\/apigw-0`/);
    assert.match(md, /## Nodes\n\n- `node-a`/);
    assert.match(md, /## BuildIDs observed\n\n- `03d4a1b2c3d4e5f60718293a4b5c6d7e8f901234`/);
    assert.equal(evidenceMarkdown(AFFECTED), md, "deterministic");
  });
});
