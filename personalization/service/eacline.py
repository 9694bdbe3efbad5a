"""The EAC material a line making EAC chips holds for a run: the trust point every chip gets
(the active CVCA's certificate, read once from the key inventory) and the QA desk's terminal
(its inspection-system chain and HSM signer), so no station opens the HSM for them per card.

Kept apart from :mod:`personalization.service.eac` (the ceremonies), which the line's run does
not need.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from applets.emrtd import cvc
from applets.emrtd.eac_reader import TerminalCredentials
from hsm import eac
from hsm.inventory import InventoryPort
from hsm.pkcs11 import HSM
from personalization.benchkit import BENCH_OFFICERS
from personalization.config import EACConfig, LineConfig
from personalization.encoder import EACMaterial
from personalization.line.context import LineEAC
from personalization.service import eacpki
from personalization.service.eacpki import TerminalKey
from personalization.service.errors import ServiceError
from personalization.service.keys import open_hsm, open_inventory


def active_cvca(config: LineConfig) -> bytes:
    """The active CVCA's self-signed CV certificate (DER): the chips' trust point."""
    with open_inventory(config) as inventory:
        cvca = inventory.active(eac.CVCA)
    if cvca is None:
        raise ServiceError("there is no active CVCA; security officers create it with "
                           "`cardline keys eac-init`")
    return cvca.certificate


@contextmanager
def qa_terminal_key(config: LineConfig) -> Iterator[TerminalKey]:
    """The QA desk's Terminal Authentication key while the block runs: its chain (CVCA, DV,
    IS; DER) and a signer (message → plain r ‖ s, SHA-256 then ECDSA in the HSM)."""
    with open_inventory(config) as inventory:
        if inventory.active(eac.IS) is None:
            raise ServiceError("the QA desk has no inspection-system key; security officers "
                               "create it with `cardline keys eac-init` (or `eac-renew`)")
        with open_hsm(config) as line_hsm:
            yield eacpki.qa_terminal(line_hsm, inventory, datetime.now(UTC).replace(
                microsecond=0))


def terminal_credentials(key: TerminalKey) -> TerminalCredentials:
    """The QA desk's key as a terminal runs Terminal Authentication: the chain below the
    chip's trust point (DV, IS) and the HSM signer."""
    return TerminalCredentials(tuple(cvc.CVCertificate.decode(der) for der in key.chain[1:]),
                               key.sign)


@contextmanager
def line_eac(config: LineConfig) -> Iterator[LineEAC]:
    """The trust point and the QA terminal of a line making EAC chips, while the block runs."""
    material = EACMaterial.from_der(active_cvca(config))
    with qa_terminal_key(config) as key:
        yield LineEAC(material, terminal_credentials(key))


def bench_pki(hsm: HSM, inventory: InventoryPort, at: datetime) -> LineEAC:
    """For ``cardline bench`` (``benchkit.bench_hsm``): the CVCA, DV and QA desk IS made on a
    throwaway token by the policy's defaults, and what a line holds of them."""
    policy = EACConfig()
    ceremony = eacpki.Ceremony.of(BENCH_OFFICERS, at)
    cvca = eacpki.init_cvca(hsm, inventory, policy, ceremony)
    eacpki.new_dv(hsm, hsm, inventory, policy, ceremony)
    eacpki.new_qa_is(hsm, inventory, policy, ceremony)
    key = eacpki.qa_terminal(hsm, inventory, at.replace(microsecond=0))
    return LineEAC(EACMaterial.from_der(cvca.certificate), terminal_credentials(key))
