/**
 * Bind addresses in the Go/controller-runtime form users already write in Helm values:
 * ":8080" (all interfaces), "127.0.0.1:8080", "[::1]:8080", "localhost:0" (port 0 = any free port).
 */
import { isIP } from "node:net";
import { StellaError } from "../errors.ts";

export interface ListenAddress {
  /** undefined = all interfaces. */
  host: string | undefined;
  port: number;
}

export class ListenAddressError extends StellaError<"INVALID_ADDRESS"> {
  constructor(message: string) {
    super("INVALID_ADDRESS", message);
  }
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function parseListenAddress(address: string): ListenAddress {
  const colon = address.lastIndexOf(":");
  if (colon < 0)
    throw new ListenAddressError(`address ${JSON.stringify(address)} must be host:port or :port`);
  let host = address.slice(0, colon);
  const portText = address.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65_535) {
    throw new ListenAddressError(`address ${JSON.stringify(address)} has an invalid port`);
  }
  if (host.startsWith("[") && host.endsWith("]")) {
    host = host.slice(1, -1);
    if (isIP(host) !== 6)
      throw new ListenAddressError(`address ${JSON.stringify(address)}: bad IPv6 literal`);
  } else if (host !== "" && isIP(host) === 0 && !HOSTNAME.test(host)) {
    throw new ListenAddressError(`address ${JSON.stringify(address)} has an invalid host`);
  } else if (isIP(host) === 6) {
    throw new ListenAddressError(`address ${JSON.stringify(address)}: write IPv6 hosts in brackets`);
  }
  return { host: host === "" ? undefined : host, port: Number(portText) };
}
