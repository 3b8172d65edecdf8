// submitDsse against a real Rekor v2 log (`make rekor-server`), and against small node:http fakes for the failures a
// real log does not produce on demand (oversized, non-JSON or stalled answers).
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { createServer, type Server } from "node:http";
import { after, before, describe, test } from "node:test";

import { loadPrivateKey, type KeyType, type PrivateKey } from "../dsse/keys.ts";
import { keySigner, signEnvelope } from "../dsse/sign.ts";
import { isStellaError } from "../errors.ts";
import { startRekor, type TestRekor } from "../testing/rekor.ts";
import { dsseEntryRequest, submitDsse } from "./rekor.ts";

function newKey(type: KeyType = "ecdsa-p256"): PrivateKey {
  const { privateKey } =
    type === "ed25519"
      ? generateKeyPairSync("ed25519")
      : generateKeyPairSync("ec", { namedCurve: type === "ecdsa-p384" ? "P-384" : "P-256" });
  return loadPrivateKey(privateKey.export({ type: "pkcs8", format: "pem" }).toString(), `${type} key`);
}

const payload = (text: string): Uint8Array => new TextEncoder().encode(text);

async function rejectsWith(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isStellaError(err), String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
}

/** A one-route fake log answering every request with `handler`. */
async function fakeLog(
  handler: Parameters<typeof createServer>[1],
): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : 0;
  return { url: `http://127.0.0.1:${String(port)}`, server };
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
}

describe("submitDsse against a real Rekor v2 log", () => {
  let rekor: TestRekor;
  const key = newKey();

  before(async () => {
    rekor = await startRekor();
  });
  after(async () => {
    await rekor.stop();
  });

  test("logs the envelope's signature as hashedrekord 0.0.2 with a proof and a checkpoint", async () => {
    const env = await signEnvelope("application/vnd.in-toto+json", payload('{"n":1}'), [keySigner(key)]);
    const entry = await submitDsse({ url: `${rekor.url}/` }, env, key.publicKey);
    assert.deepEqual(entry.kindVersion, { kind: "hashedrekord", version: "0.0.2" });
    const [tlog] = (rekor.trustedRoot as { tlogs: { logId: { keyId: string } }[] }).tlogs;
    assert.equal(entry.logId.keyId, tlog?.logId.keyId);
    assert.ok(entry.inclusionProof?.checkpoint.envelope.startsWith(`${rekor.origin}\n`));
    const body = JSON.parse(Buffer.from(entry.canonicalizedBody, "base64").toString()) as {
      spec: {
        hashedRekordV002: { signature: { content: string; verifier: { publicKey: { rawBytes: string } } } };
      };
    };
    const sig = body.spec.hashedRekordV002.signature;
    assert.equal(sig.content, Buffer.from(env.signatures[0]?.sig ?? "", "base64").toString("base64"));
    assert.equal(
      sig.verifier.publicKey.rawBytes,
      key.publicKey.key.export({ type: "spki", format: "der" }).toString("base64"),
    );
  });

  test("the log checks the signature: another key is refused with the HTTP status and the log's message", async () => {
    const env = await signEnvelope("application/vnd.in-toto+json", payload('{"n":2}'), [keySigner(key)]);
    await rejectsWith(
      submitDsse({ url: rekor.url }, env, newKey().publicKey),
      "TLOG_SUBMIT",
      new RegExp(`POST ${rekor.url}/api/v2/log/entries: HTTP 400: .*invalid hashedrekord request`),
    );
  });

  test("keys whose DSSE signatures a Rekor v2 entry cannot record are refused before any request", async () => {
    for (const type of ["ed25519", "ecdsa-p384"] as const) {
      const k = newKey(type);
      const env = await signEnvelope("text/plain", payload("x"), [keySigner(k)]);
      await rejectsWith(
        submitDsse({ url: rekor.url }, env, k.publicKey),
        "TLOG_UNSUPPORTED_KEY",
        new RegExp(type),
      );
    }
  });

  test("an envelope with two signatures is refused", async () => {
    const env = await signEnvelope("text/plain", payload("x"), [keySigner(key), keySigner(newKey())]);
    assert.throws(() => dsseEntryRequest(env, key.publicKey), /exactly one signature; this envelope has 2/);
  });
});

describe("startRekor", () => {
  test("without the binary: an error saying how to build it", async () => {
    const saved = process.env["STELLA_E2E_CACHE"];
    process.env["STELLA_E2E_CACHE"] = "/nonexistent/stella-cache";
    try {
      await assert.rejects(
        startRekor(),
        /\/nonexistent\/stella-cache\/bin\/rekor-server is missing.*make rekor-server/,
      );
    } finally {
      if (saved === undefined) delete process.env["STELLA_E2E_CACHE"];
      else process.env["STELLA_E2E_CACHE"] = saved;
    }
  });
});

describe("submitDsse failures", () => {
  const key = newKey();
  let env: Awaited<ReturnType<typeof signEnvelope>>;
  before(async () => {
    env = await signEnvelope("text/plain", payload("x"), [keySigner(key)]);
  });

  test("nothing listening: TLOG_SUBMIT naming the URL", async () => {
    const { url, server } = await fakeLog(() => undefined);
    await close(server);
    await rejectsWith(
      submitDsse({ url }, env, key.publicKey),
      "TLOG_SUBMIT",
      new RegExp(`POST ${url}/api/v2/log/entries`),
    );
  });

  test("a log that never answers: TLOG_SUBMIT after timeoutMs", async () => {
    const { url, server } = await fakeLog(() => undefined);
    try {
      await rejectsWith(
        submitDsse({ url, timeoutMs: 200 }, env, key.publicKey),
        "TLOG_SUBMIT",
        /timeout 200 ms/,
      );
    } finally {
      await close(server);
    }
  });

  test("an answer over the size limit, declared or streamed: TLOG_RESPONSE", async () => {
    for (const chunked of [false, true]) {
      const { url, server } = await fakeLog((_req, res) => {
        res.writeHead(201, { "content-type": "application/json" });
        if (!chunked) {
          res.end(Buffer.alloc(2 * 1024 * 1024, 0x20));
          return;
        }
        for (let i = 0; i < 32; i++) res.write(Buffer.alloc(64 * 1024, 0x20));
        res.end();
      });
      try {
        await rejectsWith(
          submitDsse({ url }, env, key.publicKey),
          "TLOG_RESPONSE",
          /over the 1048576-byte limit/,
        );
      } finally {
        await close(server);
      }
    }
  });

  test("an answer that is not an entry: TLOG_RESPONSE with an excerpt", async () => {
    for (const [body, message] of [
      ["<html>proxy error</html>", /not JSON: <html>proxy error<\/html>/],
      ['{"logIndex":"3"}', /has no logId, kindVersion, inclusionProof.checkpoint, canonicalizedBody/],
    ] as const) {
      const { url, server } = await fakeLog((_req, res) => {
        res.writeHead(201).end(body);
      });
      try {
        await rejectsWith(submitDsse({ url }, env, key.publicKey), "TLOG_RESPONSE", message);
      } finally {
        await close(server);
      }
    }
  });

  test("an HTTP error: TLOG_SUBMIT with status and a bounded excerpt of the body", async () => {
    const { url, server } = await fakeLog((_req, res) => {
      res.writeHead(503).end(`unavailable ${"z".repeat(5000)}`);
    });
    try {
      await assert.rejects(submitDsse({ url }, env, key.publicKey), (err: unknown) => {
        assert.ok(isStellaError(err, "TLOG_SUBMIT"));
        assert.match(err.message, /HTTP 503: unavailable z+…$/);
        assert.ok(err.message.length < 600);
        return true;
      });
    } finally {
      await close(server);
    }
  });
});
