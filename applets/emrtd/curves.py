"""The elliptic curves of EAC (PACE, Chip and Terminal Authentication) as numbers: each curve's
domain parameters, its object identifier, the PACE standardized domain parameter id (BSI
TR-03110-3 Table 4) and the ``cryptography`` curve that signs and agrees keys on it.

The numbers were read from OpenSSL's explicit encoding of each named curve (``openssl ecparam
-param_enc explicit``) and are checked by the tests: each generator lies on its curve and has
the stated order. Sources: RFC 5639 §3 (brainpool), FIPS 186-4 D.1.2 / SEC 2 (NIST P-256,
P-384).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True, slots=True)
class Curve:
    """A short Weierstrass curve y² = x³ + ax + b over GF(p) with base point G of order n."""

    name: str
    oid: str
    p: int
    a: int
    b: int
    gx: int
    gy: int
    n: int
    h: int
    pace_parameter_id: int | None  # TR-03110-3 Table 4, None when PACE does not name it

    @property
    def size(self) -> int:
        """Bytes of a field element (every coordinate is padded to this length)."""
        return (self.p.bit_length() + 7) // 8

    def crypto_curve(self) -> ec.EllipticCurve:
        """The ``cryptography`` curve object for this curve."""
        return _CRYPTO[self.name]()


BRAINPOOL_P256R1 = Curve(
    name="brainpoolP256r1", oid="1.3.36.3.3.2.8.1.1.7",
    p=int("A9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377", 16),
    a=int("7D5A0975FC2C3057EEF67530417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9", 16),
    b=int("26DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6BCCDC18FF8C07B6", 16),
    gx=int("8BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262", 16),
    gy=int("547EF835C3DAC4FD97F8461A14611DC9C27745132DED8E545C1D54C72F046997", 16),
    n=int("A9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7", 16),
    h=1, pace_parameter_id=13,
)

NIST_P256 = Curve(
    name="P-256", oid="1.2.840.10045.3.1.7",
    p=int("FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF", 16),
    a=int("FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC", 16),
    b=int("5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B", 16),
    gx=int("6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296", 16),
    gy=int("4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5", 16),
    n=int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16),
    h=1, pace_parameter_id=12,
)

BRAINPOOL_P384R1 = Curve(
    name="brainpoolP384r1", oid="1.3.36.3.3.2.8.1.1.11",
    p=int(
        "8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B412B1DA197FB71123"
        "ACD3A729901D1A71874700133107EC53", 16),
    a=int(
        "7BC382C63D8C150C3C72080ACE05AFA0C2BEA28E4FB22787139165EFBA91F90F"
        "8AA5814A503AD4EB04A8C7DD22CE2826", 16),
    b=int(
        "4A8C7DD22CE28268B39B55416F0447C2FB77DE107DCD2A62E880EA53EEB62D57"
        "CB4390295DBC9943AB78696FA504C11", 16),
    gx=int(
        "1D1C64F068CF45FFA2A63A81B7C13F6B8847A3E77EF14FE3DB7FCAFE0CBD10E8"
        "E826E03436D646AAEF87B2E247D4AF1E", 16),
    gy=int(
        "8ABE1D7520F9C2A45CB1EB8E95CFD55262B70B29FEEC5864E19C054FF9912928"
        "0E4646217791811142820341263C5315", 16),
    n=int(
        "8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B31F166E6CAC0425A7"
        "CF3AB6AF6B7FC3103B883202E9046565", 16),
    h=1, pace_parameter_id=16,
)

NIST_P384 = Curve(
    name="P-384", oid="1.3.132.0.34",
    p=int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE"
        "FFFFFFFF0000000000000000FFFFFFFF", 16),
    a=int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE"
        "FFFFFFFF0000000000000000FFFFFFFC", 16),
    b=int(
        "B3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875A"
        "C656398D8A2ED19D2A85C8EDD3EC2AEF", 16),
    gx=int(
        "AA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A38"
        "5502F25DBF55296C3A545E3872760AB7", 16),
    gy=int(
        "3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C0"
        "0A60B1CE1D7E819D7A431D7C90EA0E5F", 16),
    n=int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
        "581A0DB248B0A77AECEC196ACCC52973", 16),
    h=1, pace_parameter_id=15,
)

BRAINPOOL_P512R1 = Curve(
    name="brainpoolP512r1", oid="1.3.36.3.3.2.8.1.1.13",
    p=int(
        "AADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330871"
        "7D4D9B009BC66842AECDA12AE6A380E62881FF2F2D82C68528AA6056583A48F3", 16),
    a=int(
        "7830A3318B603B89E2327145AC234CC594CBDD8D3DF91610A83441CAEA9863BC"
        "2DED5D5AA8253AA10A2EF1C98B9AC8B57F1117A72BF2C7B9E7C1AC4D77FC94CA", 16),
    b=int(
        "3DF91610A83441CAEA9863BC2DED5D5AA8253AA10A2EF1C98B9AC8B57F1117A7"
        "2BF2C7B9E7C1AC4D77FC94CADC083E67984050B75EBAE5DD2809BD638016F723", 16),
    gx=int(
        "81AEE4BDD82ED9645A21322E9C4C6A9385ED9F70B5D916C1B43B62EEF4D0098E"
        "FF3B1F78E2D0D48D50D1687B93B97D5F7C6D5047406A5E688B352209BCB9F822", 16),
    gy=int(
        "7DDE385D566332ECC0EABFA9CF7822FDF209F70024A57B1AA000C55B881F8111"
        "B2DCDE494A5F485E5BCA4BD88A2763AED1CA2B2FA8F0540678CD1E0F3AD80892", 16),
    n=int(
        "AADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330870"
        "553E5C414CA92619418661197FAC10471DB1D381085DDADDB58796829CA90069", 16),
    h=1, pace_parameter_id=17,
)

CURVES: tuple[Curve, ...] = (BRAINPOOL_P256R1, NIST_P256, BRAINPOOL_P384R1, NIST_P384,
                             BRAINPOOL_P512R1)

_CRYPTO: dict[str, type[ec.EllipticCurve]] = {
    "brainpoolP256r1": ec.BrainpoolP256R1,
    "P-256": ec.SECP256R1,
    "brainpoolP384r1": ec.BrainpoolP384R1,
    "P-384": ec.SECP384R1,
    "brainpoolP512r1": ec.BrainpoolP512R1,
}



def by_oid(oid: str) -> Curve:
    """The curve with this object identifier (KeyError when EAC does not use it)."""
    for curve in CURVES:
        if curve.oid == oid:
            return curve
    return _missing("object identifier", oid)


def by_pace_parameter_id(parameter_id: int) -> Curve:
    """The curve PACE names by this standardized domain parameter id."""
    for curve in CURVES:
        if curve.pace_parameter_id == parameter_id:
            return curve
    return _missing("PACE parameter id", str(parameter_id))


def by_parameters(p: int, a: int, b: int, gx: int, gy: int, n: int) -> Curve:
    """The named curve whose explicit domain parameters these are (DG14's CA key carries
    them explicitly)."""
    for curve in CURVES:
        if (curve.p, curve.a, curve.b, curve.gx, curve.gy, curve.n) == (p, a, b, gx, gy, n):
            return curve
    return _missing("explicit domain parameters", f"p of {p.bit_length()} bits")


def _missing(what: str, value: str) -> Curve:
    raise KeyError(f"no EAC curve with {what} {value}")
