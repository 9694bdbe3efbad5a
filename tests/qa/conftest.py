"""Fixtures for the QA tests: one synthesized application, the PKI and a card factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from applets.transport.base import DirectTransport
from applets.virtual.card import VirtualEMRTD
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.profile import DocumentProfile, load_profile
from personalization.synth import synthesize
from qa.passive_auth import TrustStore
from tests.qa.cards import AT, PKI, Prepared, personalize, prepare
from tests.support.crew import Crew, enrol

QA_DESK = """\
line: qa-desk
data_dir: {folder}/data
hsm: {{module: /usr/lib/softhsm/libsofthsm2.so, token: qa-desk}}
journal: {{url: 'sqlite:///{folder}/journal.db'}}
"""


@pytest.fixture(scope="session")
def qa_desk(tmp_path_factory: pytest.TempPathFactory) -> Crew:
    """The QA desk's own line.yaml and journal, with its crew (quy holds the QA role)."""
    folder = tmp_path_factory.mktemp("qa-desk")
    path = Path(folder) / "line.yaml"
    path.write_text(QA_DESK.format(folder=folder), encoding="utf-8")
    return enrol(path)


@pytest.fixture(autouse=True)
def _at_the_qa_desk(qa_desk: Crew, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cardline qa` processes started by these tests run at the QA desk, as quy."""
    monkeypatch.setenv("CARDLINE_CONFIG", str(qa_desk.folder.parent / "line.yaml"))
    for key, value in qa_desk.env("quy", {}).items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def profile() -> DocumentProfile:
    """The bundled CCCD profile on a BAC-only chip (the EAC chip's QA: test_eac_*.py)."""
    return load_profile("cccd-bac")


@pytest.fixture(scope="session")
def application(tmp_path_factory: pytest.TempPathFactory, profile: DocumentProfile) -> Application:
    """One synthesized, validated application."""
    out = tmp_path_factory.mktemp("qa-synth") / "apps.jsonl"
    synthesize(1, 7, out)
    valid = read_applications(out, profile.intake_rules(), AT.date()).valid
    return valid[0][1]


@pytest.fixture(scope="session")
def pki() -> PKI:
    """A CSCA and a Document Signer valid at the check time."""
    return PKI()


@pytest.fixture(scope="session")
def trust(pki: PKI) -> TrustStore:
    """The trust store holding the CSCA."""
    return TrustStore((pki.csca_der,))


@pytest.fixture(scope="session")
def prepared(profile: DocumentProfile, application: Application, pki: PKI) -> Prepared:
    """The application's card data, keys and expectations."""
    return prepare(profile, application, pki)


@pytest.fixture()
def make_card(prepared: Prepared, pki: PKI) -> Callable[..., VirtualEMRTD]:
    """Personalize a fresh virtual chip in-process; keyword arguments go to personalize()."""

    def make(max_command_data: int = 65535, **options: Any) -> VirtualEMRTD:
        card = VirtualEMRTD("QA00000001", max_command_data=max_command_data)
        card.power_on()
        signer = options.pop("signer", pki.signer())
        personalize(DirectTransport(card, max_command_data), prepared, signer, **options)
        card.power_on()
        return card

    return make
