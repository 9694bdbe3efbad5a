"""The HSM side of the EAC PKI (BSI TR-03110-3; ICAO 9303-11 §7.1): the keys of the Country
Verifying CA (CVCA), the Document Verifier (DV) and the inspection systems (IS) generated in
the HSM on a named curve, checked against the key policy, and signing for Terminal
Authentication's id-TA-ECDSA-SHA-* with CKM_ECDSA over a digest computed here.

The CV certificates themselves are built by the caller (the signer returned here is all a
certificate builder needs); this module knows keys, labels and the inventory's roles.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from hsm.errors import CeremonyError, KeyPolicyViolation
from hsm.pkcs11 import HSM

Signer = Callable[[bytes], bytes]  # message → plain r ‖ s

# The inventory roles of EAC keys: the CVCA lives on the CSCA's own token (the state's
# offline root), the DV and the QA desk's inspection system on the line token.
CVCA, DV, IS = "CVCA", "DV", "IS"
EAC_ROLES = (CVCA, DV, IS)
# TR-03110-3 A.2.1.1: id-TA-ECDSA-SHA-256 hashes with SHA-256 (the only one we sign with).
TA_HASH = "sha256"


def algorithm_name(curve: str) -> str:
    """The inventory's algorithm name of an EAC key on ``curve`` (a curve name)."""
    return f"ta-ecdsa-sha256/{curve}"


def curve_of(algorithm: str) -> str:
    """The curve name of an inventory algorithm :func:`algorithm_name` made."""
    prefix, _, curve = algorithm.partition("/")
    if prefix != "ta-ecdsa-sha256" or not curve:
        raise CeremonyError(f"{algorithm!r} is not an EAC key algorithm")
    return curve


def generate_key(hsm: HSM, label: str, key_id: bytes, curve_oid: str) -> bytes:
    """A new EAC signing key in ``hsm`` on the curve ``curve_oid``, checked against the key
    policy; its uncompressed public point."""
    point = hsm.generate_ec_keypair(label, key_id, curve_oid)
    check_key(hsm, label, key_id)
    return point


def check_key(hsm: HSM, label: str, key_id: bytes) -> None:
    """``KeyPolicyViolation`` unless the private key was made in the HSM, is sensitive, never
    extractable, an EC key and may sign."""
    attributes = hsm.key_attributes(label, key_id)
    wanted = {
        "made in the HSM (CKA_LOCAL)": attributes.local,
        "sensitive": attributes.sensitive and attributes.always_sensitive,
        "not extractable": not attributes.extractable and attributes.never_extractable,
        "an EC key": attributes.key_type == "EC",
        "allowed to sign": attributes.can_sign,
    }
    broken = [rule for rule, holds in wanted.items() if not holds]
    if broken:
        raise KeyPolicyViolation(label, "not " + ", not ".join(broken))


def ta_signer(hsm: HSM, label: str, key_id: bytes) -> Signer:
    """Signs for id-TA-ECDSA-SHA-256: SHA-256 here, CKM_ECDSA in the HSM, plain r ‖ s out."""

    def sign(message: bytes) -> bytes:
        return hsm.sign_digest_ecdsa(label, hashlib.new(TA_HASH, message).digest(), key_id)
    return sign
