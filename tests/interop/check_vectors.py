#!/usr/bin/env python3
"""An independent implementation of the signed bytes in docs/protocol.md.

Rebuilds every message in proto/testdata/signing-vectors.json from its inputs
following the document alone, and verifies every signature: Ed25519 with a
from-scratch verifier (RFC 8032, section 5.1.7, standard library only), and
ECDSA P-256 with the `cryptography` package (OpenSSL) plus the document's own
rules on top: a 65-byte uncompressed key, canonical DER, low S. For every
P-256 vector it also checks that the signature's high-S twin, which OpenSSL
accepts, breaks the low-S rule. Computes every offline code in
proto/testdata/offline-code-vectors.json the way the document's "Offline
codes" section says, with Python's HMAC-SHA-1. If the Rust code and the
document ever disagree, this fails.
"""

import hashlib
import hmac
import json
import pathlib
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

# --- Ed25519 verification (RFC 8032 reference arithmetic) -------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def point_add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def scalar_mult(s, point):
    result = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            result = point_add(result, point)
        point = point_add(point, point)
        s >>= 1
    return result


def point_equal(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def decompress(s):
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


G = decompress((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))


def verify(public, message, signature):
    if len(public) != 32 or len(signature) != 64:
        return False
    a = decompress(public)
    r = decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    return point_equal(scalar_mult(s, G), point_add(r, scalar_mult(h, a)))


# --- ECDSA P-256 with SHA-256, as docs/protocol.md restricts it --------------

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def verify_p256(public, message, signature):
    """OpenSSL's verification, after the protocol's own checks."""
    if len(public) != 65 or public[0] != 0x04:
        return False
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public)
        r, s = decode_dss_signature(signature)
    except ValueError:
        return False
    # Exactly one encoding: canonical DER, nothing after it, and low S.
    if encode_dss_signature(r, s) != signature or not 0 < s <= P256_N // 2:
        return False
    try:
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def high_s_twin(signature):
    r, s = decode_dss_signature(signature)
    return encode_dss_signature(r, P256_N - s)


def openssl_accepts(public, message, signature):
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public)
    try:
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


VERIFIERS = {
    "KEY_ALGORITHM_ED25519": verify,
    "KEY_ALGORITHM_ECDSA_P256_SHA256": verify_p256,
}


# --- The field encoding of docs/protocol.md ----------------------------------


def field(value):
    if value is None:  # a field that only newer messages carry, unset
        return b""
    if isinstance(value, int):
        value = struct.pack(">q", value)
    elif isinstance(value, str):
        value = value.encode("utf-8")
    return struct.pack(">I", len(value)) + value


def encode(*fields):
    return b"".join(field(f) for f in fields)


def message(kind, i):
    h = bytes.fromhex
    if kind == "enrollment":
        return encode("mfa.v1.enrollment", i["activation_code"], h(i["public_key"]),
                      i["push_platform"], i["push_token"], i["device_name"],
                      i.get("key_algorithm"))
    if kind == "device_request":
        return encode("mfa.v1.device-request", i["device_id"], i["method"], i["timestamp_ms"],
                      h(i["nonce"]), *i["body"])
    if kind == "approval":
        return encode("mfa.v1.approval", i["tenant_id"], i["challenge_id"], i["device_id"],
                      i["decision"], i["typed_number"], h(i["challenge_nonce"]),
                      i.get("user_verification"))
    if kind == "challenge_context":
        return encode("mfa.v1.challenge-context", i["tenant_id"], i["tenant_display_name"],
                      i["challenge_id"], i["kind"], i["user_email"], i["application_name"],
                      i["client_ip"], i["location"], i["message"], i["create_time_ms"],
                      i["expire_time_ms"], i["number_length"], h(i["nonce"]))
    raise ValueError(f"unknown vector kind {kind}")


def offline_code(secret, unix_ms):
    """docs/protocol.md, "Offline codes": the time step and the 6 digits."""
    step = unix_ms // 30000
    mac = hmac.new(secret, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[19] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return step, f"{value % 1_000_000:06d}"


def check_offline_codes(root):
    vectors = json.loads((root / "proto/testdata/offline-code-vectors.json").read_text())["vectors"]
    failures = 0
    for v in vectors:
        step, code = offline_code(bytes.fromhex(v["secret"]), v["unix_ms"])
        ok = step == v["time_step"] and code == v["code"]
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} offline code: {v['name']}")
    if not vectors or failures:
        sys.exit(f"{failures} of {len(vectors)} offline-code vectors failed")
    print(f"all {len(vectors)} offline-code vectors match docs/protocol.md")


def main():
    root = pathlib.Path(__file__).resolve().parents[2]
    check_offline_codes(root)
    vectors = json.loads((root / "proto/testdata/signing-vectors.json").read_text())["vectors"]
    failures = 0
    algorithms = set()
    for v in vectors:
        algorithm = v["algorithm"]
        algorithms.add(algorithm)
        check = VERIFIERS[algorithm]
        built = message(v["kind"], v["input"])
        public = bytes.fromhex(v["public_key"])
        signature = bytes.fromhex(v["signature"])
        ok_bytes = built.hex() == v["message"]
        ok_sig = check(public, built, signature)
        tampered = check(public, built + b"x", signature)
        twin_refused = True
        if algorithm == "KEY_ALGORITHM_ECDSA_P256_SHA256":
            twin = high_s_twin(signature)
            twin_refused = openssl_accepts(public, built, twin) and not check(public, built, twin)
        ok = ok_bytes and ok_sig and not tampered and twin_refused
        if not ok:
            failures += 1
        print(f"{'ok  ' if ok else 'FAIL'} {v['name']}: "
              f"bytes {'match' if ok_bytes else 'DIFFER'}, signature {'verifies' if ok_sig else 'FAILS'}"
              f"{'' if twin_refused else ', high-S twin NOT refused'}")
    if not vectors or failures:
        sys.exit(f"{failures} of {len(vectors)} vectors failed")
    if algorithms != set(VERIFIERS):
        sys.exit(f"vectors cover {sorted(algorithms)}, not every algorithm")
    print(f"all {len(vectors)} vectors match docs/protocol.md")


if __name__ == "__main__":
    main()
