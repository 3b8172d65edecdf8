#!/usr/bin/env python3
"""Independent DSSE check for core/dsse tests, using securesystemslib (PyPI), not our code.

    verify_dsse.py verify ENVELOPE.json PUB.pem [PUB.pem ...] [--threshold N]
        Verifies with securesystemslib.dsse.Envelope.verify; prints {"verified": [keyid, ...]}; exit 0,
        or prints the error and exits 1.
    verify_dsse.py sign PRIV.pem PAYLOAD_TYPE PAYLOAD_FILE
        Signs with a securesystemslib CryptoSigner; prints the envelope JSON.
    verify_dsse.py keyid PUB.pem
        Prints the keyid: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo (our definition,
        recomputed here independently).

Keys get that keyid (securesystemslib's default keyid is a different hash, of its own key dict).
Needs the venv made as in the test's error message (pip install 'securesystemslib[crypto]==1.6.0').
"""

import argparse
import hashlib
import json
import sys

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey


def keyid_of(public_key) -> str:
    der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def sslib_key(public_key) -> SSlibKey:
    return SSlibKey.from_crypto(public_key, keyid=keyid_of(public_key))


def load_public(path: str):
    with open(path, "rb") as f:
        return load_pem_public_key(f.read())


def cmd_verify(args) -> int:
    with open(args.envelope, "rb") as f:
        envelope = Envelope.from_dict(json.load(f))
    keys = [sslib_key(load_public(p)) for p in args.keys]
    try:
        accepted = envelope.verify(keys, args.threshold)
    except Exception as e:  # noqa: BLE001 - report any refusal
        print(f"{type(e).__name__}: {e}")
        return 1
    print(json.dumps({"verified": sorted(accepted.keys())}))
    return 0


def cmd_sign(args) -> int:
    with open(args.key, "rb") as f:
        private_key = load_pem_private_key(f.read(), password=None)
    signer = CryptoSigner(private_key, sslib_key(private_key.public_key()))
    with open(args.payload, "rb") as f:
        payload = f.read()
    envelope = Envelope(payload, args.payload_type, {})
    envelope.sign(signer)
    print(json.dumps(envelope.to_dict()))
    return 0


def cmd_keyid(args) -> int:
    print(keyid_of(load_public(args.key)))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify")
    v.add_argument("envelope")
    v.add_argument("keys", nargs="+")
    v.add_argument("--threshold", type=int, default=1)
    v.set_defaults(func=cmd_verify)
    s = sub.add_parser("sign")
    s.add_argument("key")
    s.add_argument("payload_type")
    s.add_argument("payload")
    s.set_defaults(func=cmd_sign)
    k = sub.add_parser("keyid")
    k.add_argument("key")
    k.set_defaults(func=cmd_keyid)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
