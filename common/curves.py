"""The prime-field elliptic curves cardline knows, by name, with their domain parameters.

One table serves the chip's Active Authentication key (DG15), the Document Signer and CSCA
certificates, the virtual chip and EAC (PACE, Chip and Terminal Authentication:
:mod:`applets.emrtd.curves` says which of these curves EAC uses and the PACE parameter ids
that name them). Explicit parameters (SEC 1 §C.2) are matched against it parameter by
parameter, as ICAO 9303-12 §4.1.6 and BSI TR-03111 §4.1.1 require chips and certificates to
carry them. The tests check each entry against pyca/cryptography's curve of the same OID, and
that each G lies on its curve with order n. Pure: integers and bytes in, curves out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from asn1crypto import keys
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True, slots=True)
class Curve:
    """A curve y² = x³ + ax + b over GF(p), base point G = (gx, gy) of order n, cofactor h."""

    name: str  # as pyca/cryptography spells it: SEC 2's secp256r1, RFC 5639's brainpoolP256r1
    # as line.yaml, the profiles, the EAC key inventory and EAC's messages say it: FIPS 186-4's
    # P-256 for a NIST curve, else the name
    label: str
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
        """The length in bytes of one field element (every coordinate is padded to it)."""
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

    def crypto_curve(self) -> ec.EllipticCurve:
        """The pyca/cryptography curve with the same parameters, found by its OID."""
        return ec.get_curve_for_oid(x509.ObjectIdentifier(self.oid))()


# SEC 2 v2 §2.4.2 (= NIST P-256, FIPS 186-4 D.1.2.3); OID from RFC 5480 §2.1.1.1.
SECP256R1 = Curve(
    name="secp256r1",
    label="P-256",
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
SECP384R1 = Curve(
    name="secp384r1",
    label="P-384",
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
# RFC 5639 §3.4; OID from §4.1.
BRAINPOOL_P256R1 = Curve(
    name="brainpoolP256r1",
    label="brainpoolP256r1",
    oid="1.3.36.3.3.2.8.1.1.7",
    p=0xA9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377,
    a=0x7D5A0975FC2C3057EEF67530417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9,
    b=0x26DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6BCCDC18FF8C07B6,
    gx=0x8BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262,
    gy=0x547EF835C3DAC4FD97F8461A14611DC9C27745132DED8E545C1D54C72F046997,
    n=0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7,
    h=1,
)
# RFC 5639 §3.6; OID from §4.1.
BRAINPOOL_P384R1 = Curve(
    name="brainpoolP384r1",
    label="brainpoolP384r1",
    oid="1.3.36.3.3.2.8.1.1.11",
    p=int("8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B412B1DA197FB71123"
          "ACD3A729901D1A71874700133107EC53", 16),
    a=int("7BC382C63D8C150C3C72080ACE05AFA0C2BEA28E4FB22787139165EFBA91F90F"
          "8AA5814A503AD4EB04A8C7DD22CE2826", 16),
    b=int("4A8C7DD22CE28268B39B55416F0447C2FB77DE107DCD2A62E880EA53EEB62D57"
          "CB4390295DBC9943AB78696FA504C11", 16),
    gx=int("1D1C64F068CF45FFA2A63A81B7C13F6B8847A3E77EF14FE3DB7FCAFE0CBD10E8"
           "E826E03436D646AAEF87B2E247D4AF1E", 16),
    gy=int("8ABE1D7520F9C2A45CB1EB8E95CFD55262B70B29FEEC5864E19C054FF9912928"
           "0E4646217791811142820341263C5315", 16),
    n=int("8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B31F166E6CAC0425A7"
          "CF3AB6AF6B7FC3103B883202E9046565", 16),
    h=1,
)
# RFC 5639 §3.7; OID from §4.1.
BRAINPOOL_P512R1 = Curve(
    name="brainpoolP512r1",
    label="brainpoolP512r1",
    oid="1.3.36.3.3.2.8.1.1.13",
    p=int("AADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330871"
          "7D4D9B009BC66842AECDA12AE6A380E62881FF2F2D82C68528AA6056583A48F3", 16),
    a=int("7830A3318B603B89E2327145AC234CC594CBDD8D3DF91610A83441CAEA9863BC"
          "2DED5D5AA8253AA10A2EF1C98B9AC8B57F1117A72BF2C7B9E7C1AC4D77FC94CA", 16),
    b=int("3DF91610A83441CAEA9863BC2DED5D5AA8253AA10A2EF1C98B9AC8B57F1117A7"
          "2BF2C7B9E7C1AC4D77FC94CADC083E67984050B75EBAE5DD2809BD638016F723", 16),
    gx=int("81AEE4BDD82ED9645A21322E9C4C6A9385ED9F70B5D916C1B43B62EEF4D0098E"
           "FF3B1F78E2D0D48D50D1687B93B97D5F7C6D5047406A5E688B352209BCB9F822", 16),
    gy=int("7DDE385D566332ECC0EABFA9CF7822FDF209F70024A57B1AA000C55B881F8111"
           "B2DCDE494A5F485E5BCA4BD88A2763AED1CA2B2FA8F0540678CD1E0F3AD80892", 16),
    n=int("AADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330870"
          "553E5C414CA92619418661197FAC10471DB1D381085DDADDB58796829CA90069", 16),
    h=1,
)
CURVES: dict[str, Curve] = {curve.name: curve for curve in (
    SECP256R1, SECP384R1, BRAINPOOL_P256R1, BRAINPOOL_P384R1, BRAINPOOL_P512R1)}


def match_specified(specified: keys.SpecifiedECDomain,
                    among: Iterable[Curve]) -> Curve | None:
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
