"""EAC chips for QA: the prepared application's groups plus DG3, an EAC DG14 and DG15, signed by
the QA test DS, personalized in-process with PACE, the CAN and the test CV PKI's trust point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

from cryptography.hazmat.primitives.asymmetric import ec

from applets.emrtd.cvc import CVCertificate
from applets.emrtd.lds.com import encode_com
from applets.emrtd.lds.cvca import encode_cvca
from applets.emrtd.lds.dg3 import decode_dg3
from applets.emrtd.lds.dg15 import encode_dg15_ec_point
from applets.emrtd.lds.files import DATA_GROUPS, EF_COM, EF_CVCA, EF_SOD
from applets.emrtd.lds.sod import SODBuilder
from applets.emrtd.perso import AccessProtocols, PersoClient
from applets.transport.base import DirectTransport
from applets.virtual.card import VirtualEMRTD
from qa.checks import Expected
from tests.applets.eac_cards import (
    CAN,
    DAY,
    DG3_SAMPLE,
    PARAMETER_IDS,
    card_access,
    dg14,
    pki,
)
from tests.qa.cards import Prepared
from tests.support.signers import SoftwareSigner

Groups = dict[int, bytes]
# The BSI 2008 sample's two WSQ images, by ISO/IEC 19794-4 finger position (2 and 7).
FINGERPRINTS = {finger.position: finger.image for record in decode_dg3(DG3_SAMPLE).records
                for finger in record.fingers}


def expected_with_fingers(prepared: Prepared) -> Expected:
    """What QA must find: the prepared MRZ, DG13 and portrait, and the sample's two fingers."""
    return replace(prepared.expected, fingerprints=dict(FINGERPRINTS))


@dataclass(frozen=True)
class EACOptions:
    """How one test chip differs from a good one."""

    parameter_id: int = 13
    protocols: AccessProtocols = AccessProtocols.PACE
    dg3: bytes = DG3_SAMPLE
    other_ca_key: bool = False  # DG14 names a key the chip does not hold
    after_sign: Callable[[Groups], None] | None = None  # change the groups after signing


def _dg14(curve_id: int, chip_point: bytes, other: bool) -> bytes:
    curve = PARAMETER_IDS[curve_id]
    if not other:
        return dg14(curve, chip_point, curve_id)
    numbers = ec.generate_private_key(curve.crypto_curve()).public_key().public_numbers()
    point = b"\x04" + numbers.x.to_bytes(curve.size, "big") + numbers.y.to_bytes(curve.size, "big")
    return dg14(curve, point, curve_id)


def personalize_eac_chip(prepared: Prepared, signer: SoftwareSigner,
                         options: EACOptions = EACOptions(), *,
                         trust_point: CVCertificate | None = None,
                         chip_date: date = DAY) -> VirtualEMRTD:
    """A locked EAC chip: CA and AA keys made on the chip, EF.SOD over every group (DG3 and
    DG14 included), EF.CardAccess, EF.CVCA, the BAC seed, PACE MRZ and CAN, the trust point
    (the test CV PKI's CVCA unless given) and the chip's date."""
    cvca = trust_point or pki().cvca
    card = VirtualEMRTD("QAEAC0001")
    client = PersoClient(DirectTransport(card))
    client.select_applet()
    client.set_access_protocols(options.protocols)
    ca_point = client.generate_ca_key(PARAMETER_IDS[options.parameter_id])
    aa_point = client.generate_aa_key()
    groups: Groups = {**prepared.data.data_groups, 3: options.dg3,
                      14: _dg14(options.parameter_id, ca_point, options.other_ca_key),
                      15: encode_dg15_ec_point(aa_point)}
    sod = SODBuilder(signer).build(groups)
    if options.after_sign is not None:
        options.after_sign(groups)
    client.put_file(EF_COM.fid, encode_com([DATA_GROUPS[n].tag or 0 for n in sorted(groups)]))
    for number, body in sorted(groups.items()):
        client.put_file(DATA_GROUPS[number].fid, body)
    client.put_file(EF_SOD.fid, sod)
    client.put_file(EF_CVCA.fid, encode_cvca([str(cvca.body.chr)]))
    client.put_card_access(card_access(options.parameter_id))
    client.put_bac_seed(*prepared.data.bac_key)
    client.put_pace_mrz(*prepared.data.bac_key)
    client.put_can(CAN)
    client.put_trust_point(cvca)
    client.put_chip_date(chip_date)
    client.lock()
    card.power_on()
    return card
