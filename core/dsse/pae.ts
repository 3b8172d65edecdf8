import { DsseError } from "./envelope.ts";

const utf8 = new TextEncoder();

/**
 * DSSE Pre-Authentication Encoding, the exact bytes a DSSE signature covers:
 *
 *     PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
 *
 * where `type` is the UTF-8 encoding of `payloadType` and LEN is the ASCII decimal byte count, without
 * leading zeros (https://github.com/secure-systems-lab/dsse/blob/master/protocol.md). Lengths count
 * bytes, not characters: "application/vnd.exämple+json" is 29, not 28.
 *
 * A payloadType with a lone UTF-16 surrogate has no UTF-8 encoding (TextEncoder would silently
 * substitute U+FFFD, so two different types would sign the same bytes): it is refused.
 */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  if (!payloadType.isWellFormed()) {
    throw new DsseError("DSSE_MALFORMED", "payloadType: not a well-formed Unicode string (lone surrogate)");
  }
  const type = utf8.encode(payloadType);
  const head = utf8.encode(`DSSEv1 ${type.length} `);
  const middle = utf8.encode(` ${payload.length} `);
  const out = new Uint8Array(head.length + type.length + middle.length + payload.length);
  let at = 0;
  for (const part of [head, type, middle, payload]) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
