"""The prime-field elliptic curves cardline knows, by name, with their domain parameters.

One table serves the chip's Active Authentication key (DG15), the Document Signer and CSCA
certificates, and the virtual chip. Explicit parameters (SEC 1 §C.2) are matched against it
parameter by parameter, as ICAO 9303-12 §4.1.6 and BSI TR-03111 §4.1.1 require chips and
certificates to carry them. Pure: integers and bytes in, curves out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from asn1crypto import keys
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True, slots=True)
class PrimeCurve:
    """A curve y² = x³ + ax + b over GF(p), base point G = (gx, gy) of order n, cofactor h."""

    name: str  # the SEC 2 name, as asn1crypto and pyca/cryptography spell it
    oid: str
    p: int
    a: int
    b: int
    gx: int
    gy: int
    n: int
    h: int

    @property
    def size(self) -> int:
        """The length in bytes of one field element."""
        return (self.p.bit_length() + 7) // 8

    @property
    def base(self) -> bytes:
        """G as an uncompressed point (SEC 1 §2.3.3)."""
        return b"\x04" + self.gx.to_bytes(self.size, "big") + self.gy.to_bytes(self.size, "big")

    @property
    def domain(self) -> tuple[int, int, int, bytes, int, int]:
        """(p, a, b, G, n, h): what explicit parameters must equal to denote this curve."""
        return (self.p, self.a, self.b, self.base, self.n, self.h)

    def on_curve(self, x: int, y: int) -> bool:
        """Whether (x, y) satisfies the curve equation."""
        return (y * y - (x * x * x + self.a * x + self.b)) % self.p == 0

    def curve(self) -> ec.EllipticCurve:
        """The pyca/cryptography curve with the same parameters, found by its OID."""
        return ec.get_curve_for_oid(x509.ObjectIdentifier(self.oid))()


# SEC 2 v2 §2.4.2 (= NIST P-256, FIPS 186-4 D.1.2.3); OID from RFC 5480 §2.1.1.1.
SECP256R1 = PrimeCurve(
    name="secp256r1",
    oid="1.2.840.10045.3.1.7",
    p=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
    a=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC,
    b=0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    gx=0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    gy=0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
    n=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    h=1,
)
# SEC 2 v2 §2.5.1 (= NIST P-384, FIPS 186-4 D.1.2.4); OID from RFC 5480 §2.1.1.1.
SECP384R1 = PrimeCurve(
    name="secp384r1",
    oid="1.3.132.0.34",
    p=2**384 - 2**128 - 2**96 + 2**32 - 1,
    a=2**384 - 2**128 - 2**96 + 2**32 - 4,
    b=int("B3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875A"
          "C656398D8A2ED19D2A85C8EDD3EC2AEF", 16),
    gx=int("AA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A38"
           "5502F25DBF55296C3A545E3872760AB7", 16),
    gy=int("3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C0"
           "0A60B1CE1D7E819D7A431D7C90EA0E5F", 16),
    n=int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
          "581A0DB248B0A77AECEC196ACCC52973", 16),
    h=1,
)
CURVES: dict[str, PrimeCurve] = {curve.name: curve for curve in (SECP256R1, SECP384R1)}


def match_specified(specified: keys.SpecifiedECDomain,
                    among: Iterable[PrimeCurve]) -> PrimeCurve | None:
    """The curve of ``among`` whose every parameter equals the explicit ones, else None.

    The caller has checked that the field is a prime field (SEC 1 §C.2 ``prime-field``).
    """
    found = (
        specified["field_id"]["parameters"].native,
        int.from_bytes(specified["curve"]["a"].native, "big"),
        int.from_bytes(specified["curve"]["b"].native, "big"),
        specified["base"].native,
        specified["order"].native,
        specified["cofactor"].native,
    )
    return next((curve for curve in among if curve.domain == found), None)
