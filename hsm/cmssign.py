"""Our own CMS SignedData (RFC 5652 §5): the enveloping files sent across the registry
boundary (issuance results) and the detached signatures of audit checkpoints, signed by a key
reached through a ``sign`` callable (the key stays in the HSM)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime

from asn1crypto import cms, x509

from hsm.certificates import signature_algorithm

Signer = Callable[[bytes], bytes]


def _signing_time(at: datetime) -> cms.Time:
    # RFC 5652 §11.3: UTCTime from 1950 through 2049, GeneralizedTime otherwise.
    at = at.replace(microsecond=0)
    return cms.Time(name="utc_time" if at.year < 2050 else "generalized_time", value=at)


def _attributes_to_sign(content: bytes, at: datetime, digest: str) -> cms.CMSAttributes:
    """RFC 5652 §11: contentType, messageDigest and signingTime; DER orders a SET OF by
    encoding (X.690 §11.6), which is done here rather than left to the library."""
    attributes = [
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "message_digest",
                          "values": [hashlib.new(digest, content).digest()]}),
        cms.CMSAttribute({"type": "signing_time", "values": [_signing_time(at)]}),
    ]
    return cms.CMSAttributes(sorted(attributes, key=lambda a: a.dump()))


def build_signed_data(content: bytes, *, certificate: bytes, at: datetime, sign: Signer,
                      digest: str = "sha256", detached: bool = False) -> bytes:
    """A DER ContentInfo(SignedData) over id-data ``content`` by the key of ``certificate``,
    which ``sign`` holds: it gets the DER of the signed attributes and returns the signature
    as CMS carries it (DER Ecdsa-Sig-Value; RSASSA-PSS for an RSA key). The certificate
    travels inside; the content too unless ``detached``."""
    cert = x509.Certificate.load(certificate)
    algorithm = signature_algorithm(bytes(cert.public_key.dump()), digest)
    attributes = _attributes_to_sign(content, at, digest)
    signer = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
            "issuer": cert.issuer, "serial_number": cert.serial_number}}),
        "digest_algorithm": {"algorithm": digest},  # RFC 5754 §2: parameters absent
        "signed_attrs": attributes,
        "signature_algorithm": algorithm,
        # RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF
        "signature": sign(attributes.dump()),
    })
    encapsulated = {"content_type": "data"} if detached else \
        {"content_type": "data", "content": content}
    signed = cms.SignedData({
        "version": "v1",  # RFC 5652 §5.1: id-data, issuerAndSerialNumber, no v2 certificates
        "digest_algorithms": [{"algorithm": digest}],
        "encap_content_info": encapsulated,
        "certificates": [cert],
        "signer_infos": [signer],
    })
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())


def sign_enveloping(content: bytes, *, certificate: bytes, at: datetime, sign: Signer,
                    digest: str = "sha256") -> bytes:
    """A DER CMS SignedData carrying ``content``, as ``openssl cms -sign -nodetach`` makes."""
    return build_signed_data(content, certificate=certificate, at=at, sign=sign, digest=digest)
