"""What every station of a run shares: the journal, the batch, the preparer, the trust store,
the work queue, and where (if anywhere) card faces and chip files are written."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from applets.emrtd.eac_reader import TerminalCredentials
from applets.emrtd.lds.dg13 import DG13
from applets.errors import CardError
from personalization.applications.model import Application
from personalization.encoder import EACMaterial
from personalization.errors import PersonalizationError
from personalization.face import prints_can
from personalization.journal.port import JournalPort
from personalization.journal.records import CardRow
from personalization.line.dispatch import Dispatcher, Work
from personalization.prep import Preparer, build_dg13
from personalization.profile import DocumentProfile
from personalization.reasons import preparation_failed
from printers.face import RenderedCard
from printers.layout import CardLayout
from qa.passive_auth import TrustStore

_log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Outputs:
    """Files a demo writes per card; a production run writes none (they hold personal data)."""

    folder: Path | None = None
    dump_chips: bool = False

    def card_folder(self, application_id: str) -> Path | None:
        """``<folder>/cards/<application_id>``, created; None when nothing is written."""
        if self.folder is None:
            return None
        path = self.folder / "cards" / application_id
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True, slots=True)
class LineEAC:
    """What a line making EAC chips holds for the whole run, loaded once by the service layer
    (no station opens the HSM for it): the trust point every chip gets, and the QA terminal
    (the QA desk's inspection-system chain and HSM signer) for inline EAC QA."""

    material: EACMaterial
    qa_terminal: TerminalCredentials | None = None


@dataclass(slots=True)
class LineContext:
    """Shared by the stations of one run."""

    journal: JournalPort
    batch: str
    max_attempts: int
    preparer: Preparer
    profile: DocumentProfile
    layout: CardLayout
    trust: TrustStore
    dispatcher: Dispatcher
    stop: threading.Event
    poll_s: float = 0.5
    outputs: Outputs = field(default_factory=Outputs)
    qa_deadline_s: float = 10.0
    line: str | None = None
    halted: list[str] = field(default_factory=list)
    eac: LineEAC | None = None

    def halt(self, reason: str) -> None:
        """Stop the whole line (after the cards in hand): trouble no station can work around."""
        _log.error("line.halted", reason=reason)
        if reason not in self.halted:
            self.halted.append(reason)
        self.stop.set()

    def load_work(self, application_id: str) -> Work:
        """Load an application from the journal and prepare its card data."""
        application = self.journal.application(self.batch, application_id)
        return Work(application, self.preparer.card_data(application))

    def kept_can(self, work: Work) -> str | None:
        """The CAN a new card of ``work`` keeps in the journal: its printed random one, drawn
        with the work; None when the profile derives the CAN (a CCCD's, from the personal ID)
        or the chip has none."""
        return work.data.can if prints_can(self.profile) else None

    def work_for_card(self, card: CardRow) -> Work:
        """The work of a card begun earlier (in doubt after a crash or an alarm): its card
        data prepared again, with the CAN the journal kept with that card when the profile
        prints a random one — never a new draw, which would neither open the card's chip nor
        match its face. A card without a kept CAN gets None: QA cannot open its chip."""
        work = self.load_work(card.application_id)
        if not prints_can(self.profile):
            return work
        can = self.journal.card_access_number(self.batch, card.id)
        return Work(work.application, replace(work.data, can=can))

    def prepare_or_fail(self, application_id: str) -> Work | None:
        """:meth:`load_work`, or — when this application's data cannot be built — record it
        as failed with the reason and return None; the rest of the batch goes on."""
        try:
            return self.load_work(application_id)
        except (CardError, PersonalizationError) as exc:
            reason = preparation_failed(exc)
            _log.warning("line.prep_failed", application=application_id, **reason.as_dict())
            self.journal.fail_application(self.batch, application_id, reason)
            return None

    def dg13(self, application: Application) -> DG13:
        """The DG13 QA expects on the chip."""
        return build_dg13(application, self.profile)

    def save_faces(self, application_id: str, rendered: RenderedCard) -> None:
        """front.png and back.png of a printed card (demo outputs only)."""
        if (folder := self.outputs.card_folder(application_id)) is not None:
            rendered.front.save(folder / "front.png")
            rendered.back.save(folder / "back.png")

    def save_chip_files(self, application_id: str, files: dict[str, bytes]) -> None:
        """The files QA read, byte for byte (demo ``--dump-chips`` only)."""
        if not self.outputs.dump_chips:
            return
        if (folder := self.outputs.card_folder(application_id)) is not None:
            for name, body in files.items():
                (folder / f"{name}.bin").write_bytes(body)
