"""The prep service called directly on a private SoftHSM token: card folders and prep.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from hsm.ceremony import init_csca, new_ds
from hsm.inventory import KeyInventory, inventory_path
from hsm.pkcs11 import HSM, release_module
from hsm.softhsm import ensure_embedded_token, read_embedded_pin, softhsm_module
from personalization.demoregistry import ensure_demo_registry
from personalization.journal import open_journal
from personalization.service.applications import synthesize_applications
from personalization.service.errors import ServiceError
from personalization.service.prep import prepare_cards
from personalization.service.setup import LineSetup

pytestmark = pytest.mark.softhsm

ROOT = Path(__file__).resolve().parents[3]
MODULE = str(softhsm_module())
OFFICERS = ("Nguyễn Văn An", "Trần Thị Bình")
TODAY = date(2026, 11, 24)


def _line_yaml(tmp_path: Path, data: Path) -> Path:
    text = (ROOT / "line.yaml").read_text(encoding="utf-8")
    text = text.replace("data_dir: .cardline", f"data_dir: {data}")
    text = text.replace("softhsm_conf: .cardline/softhsm/softhsm2.conf",
                        f"softhsm_conf: {data / 'softhsm' / 'softhsm2.conf'}")
    text = text.replace("module: /usr/lib/softhsm/libsofthsm2.so", f"module: {MODULE}")
    text = text.replace("trust: [.cardline/registry/demo-registry.pem]",
                        f"trust: [{ensure_demo_registry(data).certificate}]")
    (tmp_path / "line.yaml").write_text(text, encoding="utf-8")
    return tmp_path / "line.yaml"


def _token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, with_ds: bool) -> Iterator[Path]:
    """The embedded token under tmp_path with a CSCA (and a DS); yields the line.yaml path."""
    data = tmp_path / "data"
    monkeypatch.setenv("SOFTHSM2_CONF", str(ensure_embedded_token(data, "cardline")))
    release_module(MODULE)
    at = datetime.now(UTC)
    with KeyInventory(inventory_path(data)) as inventory, \
            HSM(MODULE, "cardline", read_embedded_pin(data)) as hsm:
        init_csca(hsm, inventory, officers=OFFICERS, at=at, label="CSCA-VNM")
        if with_ds:
            new_ds(hsm, inventory, officers=OFFICERS, at=at, usage_days=30, max_documents=100,
                   label_prefix="DS-VNM")
    yield _line_yaml(tmp_path, data)
    release_module(MODULE)


@pytest.fixture
def line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A line whose token holds a CSCA and an active DS."""
    yield from _token(tmp_path, monkeypatch, with_ds=True)


@pytest.fixture
def line_without_ds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A line whose token holds a CSCA but no DS key yet."""
    yield from _token(tmp_path, monkeypatch, with_ds=False)


def _applications(tmp_path: Path) -> Path:
    """Three synthesized applications and a copy of the first with a wrong personal id, as
    the (stand-in) registry signs them."""
    path = synthesize_applications(3, 11, tmp_path / "apps.jsonl").path
    bad = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    bad.update(application_id="BAD-1", personal_id="999000000000")
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(bad, ensure_ascii=False) + "\n")
    return ensure_demo_registry(tmp_path / "data").sign_file(path, tmp_path / "apps.p7m",
                                                              "RB-PREP")


def test_prepares_the_valid_and_lists_the_rejected(line: Path, tmp_path: Path) -> None:
    """Three card folders of five files, the bad application rejected, prep.json as returned,
    and progress told before the first card and after each one."""
    seen: list[tuple[int, int]] = []
    result = prepare_cards(_applications(tmp_path), LineSetup.load(line), tmp_path / "out",
                           today=TODAY, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert len(result.prepared) == 3 and result.document_signer.startswith("DS-VNM")
    assert [r.application_id for r in result.rejected] == ["BAD-1"]
    for entry in result.prepared:
        assert entry.files == ("EF.COM", "EF.DG1", "EF.DG13", "EF.DG2", "EF.DG3", "EF.SOD")
        folder = tmp_path / "out" / entry.application_id
        assert sorted(p.name for p in folder.iterdir()) == [f"{n}.bin" for n in entry.files]
    written = json.loads((tmp_path / "out" / "prep.json").read_text(encoding="utf-8"))
    assert written == result.as_dict()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no .tmp
    with open_journal(LineSetup.load(line).config.journal.url) as journal:
        signed = journal.signatures(result.document_signer)
    assert sorted(s.document_number for s in signed) == sorted(
        e.document_number for e in result.prepared)
    assert {(s.command, s.batch) for s in signed} == {("prep", None)}


def test_no_document_signer_stops_with_the_count(line_without_ds: Path, tmp_path: Path) -> None:
    """Without an active DS key the service raises ServiceError saying no card was signed."""
    with pytest.raises(ServiceError, match=r"^signing stopped after 0 cards: "):
        prepare_cards(_applications(tmp_path), LineSetup.load(line_without_ds),
                      tmp_path / "out", today=TODAY)
    assert not (tmp_path / "out" / "prep.json").exists()
