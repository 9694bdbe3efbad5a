"""The operator's dashboard in a real browser (Debian's chromium under Playwright), served by a
`cardline serve` process on the rig's journal while the rig's line runs a batch: the progress
moves without a reload, pause and resume from the page are obeyed by the controller, a printer
fault shows as an alarm that an operator clears, roles gate the pages, the language switches.
Screenshots of each page go to build/screenshots/."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect

from personalization.service import batches, qa
from personalization.service.errors import ServiceError
from personalization.service.printers import inject_faults
from personalization.service.setup import LineSetup
from personalization.synth import synthesize
from tests.personalization.line.conftest import Rig
from tests.support.browser import SCREENSHOTS, chromium, dashboard
from tests.support.crew import passphrase

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm, pytest.mark.slow]


def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _login(browser: Browser, url: str, name: str, lang: str = "en") -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/line?lang={lang}")  # not logged in: sent to the login page
    expect(page).to_have_url(f"{url}/login")
    page.fill("#name", name)
    page.fill("#passphrase", passphrase(name))
    page.click("#login")
    expect(page).to_have_url(f"{url}/line")
    return page


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _handed_out(setup: LineSetup, name: str) -> int:
    count: int = batches.status(setup.config, name)[0]["applications"]["handed_out"]
    return count


def _live_states(setup: LineSetup, name: str) -> set[str]:
    return {(s["live"] or {}).get("state", "") for s in batches.live(setup.config, name)}


def test_an_operator_watches_pauses_and_clears_an_alarm_from_the_browser(
        rig: Rig, setup: LineSetup) -> None:
    path = rig.root / "D1.jsonl"
    synthesize(30, 21, path)
    assert batches.create(setup, rig.signed(path), "D1", journal=rig.journal).accepted == 30
    config = rig.line_yaml()
    outcome: dict[str, Any] = {}
    with dashboard(config) as url, chromium() as browser:
        page = _login(browser, url, "an")
        runner = threading.Thread(target=lambda: outcome.update(run=batches.run(setup, "D1")),
                                  daemon=True)
        runner.start()

        # the batch page follows the run with no reload: a mark set in the page survives
        page.goto(f"{url}/batches/D1")
        page.evaluate("window.__stayed = true")
        _until(lambda: _handed_out(setup, "D1") >= 2, 60, "the first cards")
        expect(page.locator("#apps-handed td")).not_to_have_text("0", timeout=10_000)
        first = int(page.inner_text("#apps-handed td"))
        expect(page.locator("#apps-handed td")).not_to_have_text(str(first), timeout=10_000)
        assert page.evaluate("window.__stayed") is True
        expect(page.locator("#throughput-chart")).to_be_visible()

        # pause from the page: the controller obeys, nothing more is handed out
        page.click("#control-pause")
        expect(page.locator("#control-message")).to_have_class("ok")
        _until(lambda: _live_states(setup, "D1") == {"paused"}, 30, "both stations paused")
        held = _handed_out(setup, "D1")
        time.sleep(1.5)  # several station cycles at fast timing
        assert _handed_out(setup, "D1") == held < 30
        _shot(page, "batch")
        page.click("#control-resume")
        _until(lambda: _handed_out(setup, "D1") > held, 30, "work after resume")
        kinds = [(e["kind"], e["data"].get("action")) for e in rig.journal.events("D1")]
        assert ("run.control", "pause") in kinds and ("run.control", "resume") in kinds

        # a printer fault: the alarm shows on the line page, with the printer's sensors
        page.goto(f"{url}/line")
        inject_faults(rig.printers.state_dir, "station-1", {"feeder_empty": True})
        alarm = page.locator("#alarm-station-1")
        expect(alarm).to_be_visible(timeout=20_000)
        expect(page.locator("#station-station-1 dd.bad").first).to_be_visible(timeout=10_000)
        _shot(page, "line-alarm")
        # "cleared" while the feeder is still empty: cleared in the journal, by whom, and the
        # station raises it again (the screen never shows a stopped station as fine)
        page.click("#clear-station-1")
        _until(lambda: any(e["kind"] == "station.cleared" for e in rig.journal.events("D1")),
               10, "the operator's clearance")
        acted = [e["data"] for e in rig.journal.people_events()
                 if e["kind"] == "people.acted" and e["data"]["action"] == "alarm.clear"]
        assert acted and acted[-1]["actor"] == "an" and acted[-1]["target"] == "D1/station-1"
        _until(lambda: [e["kind"] for e in rig.journal.events("D1")
                        if e["kind"].startswith("station.")][-1] == "station.alarm", 10,
               "the alarm raised again")
        expect(alarm).to_be_visible(timeout=10_000)
        # the operator refills the feeder: the station works again and the alarm goes
        inject_faults(rig.printers.state_dir, "station-1", {}, ["feeder_empty"])
        expect(alarm).to_have_count(0, timeout=20_000)

        runner.join(120)
        assert not runner.is_alive()
        expect(page.locator("#strip-progress")).to_contain_text("30 / 30", timeout=10_000)
        expect(page.locator("#use-station-2 td")).to_contain_text("%")
        _shot(page, "line")
    result = outcome["run"]
    assert result.finished and not result.errors and result.handed_out == 30


def test_roles_gate_the_pages_and_the_language_switches(rig: Rig, setup: LineSetup) -> None:
    config = rig.line_yaml()  # personal data kept a day after the batch closes, for QA
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings["journal"]["retention_days"] = 1
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    setup = LineSetup.load(config)
    path = rig.root / "D2.jsonl"
    synthesize(3, 22, path)
    batches.create(setup, rig.signed(path), "D2", journal=rig.journal)
    assert batches.run(setup, "D2").finished
    with dashboard(config) as url, chromium() as browser:
        operator = _login(browser, url, "an", lang="vi")
        expect(operator.locator("#nav-line")).to_have_text("Dây chuyền")
        for page_ in ("keys", "audit"):  # an operator sees neither: a page that says so
            answer = operator.goto(f"{url}/{page_}")
            assert answer is not None and answer.status == 403
            expect(operator.locator("#forbidden h1")).to_have_text(
                "Không dành cho vai trò của bạn")
        _shot(operator, "forbidden")
        operator.click("#switch-lang")  # English, and it sticks
        operator.goto(f"{url}/line")
        expect(operator.locator("#nav-line")).to_have_text("Line")
        _shot(operator, "line-done")
        refusals = [e["data"] for e in rig.journal.people_events()
                    if e["kind"] == "people.refused" and e["data"]["actor"] == "an"]
        assert {r["action"] for r in refusals} >= {"keys.read", "audit.read"}

        inspector = _login(browser, url, "quy")  # QA: verdicts, a card's detail, sign-off
        inspector.goto(f"{url}/qa?batch=D2")
        expect(inspector.locator("#qa-passed")).to_have_text("3")
        inspector.click("#qa-cards tbody a >> nth=0")
        expect(inspector.locator("#holder")).to_be_visible()  # QA investigating one card
        expect(inspector.locator("#verdict")).to_have_text("pass")
        _shot(inspector, "qa-card")
        reads = [e["data"] for e in rig.journal.people_events()
                 if e["kind"] == "people.acted" and e["data"]["action"] == "applications.read"]
        assert reads and reads[-1]["actor"] == "quy" and reads[-1]["target"].startswith("D2 ")
        inspector.goto(f"{url}/qa?batch=D2")
        inspector.click("#signoff")
        expect(inspector.locator("#signed-off")).to_be_visible()
        with pytest.raises(ServiceError, match="signed off already"):
            qa.signoff(setup.config, "quy", "D2")
        _shot(inspector, "qa")

        auditor = _login(browser, url, "aud")
        auditor.goto(f"{url}/keys")
        expect(auditor.locator("#keys tbody tr")).to_have_count(2)  # the rig's CSCA and DS
        _shot(auditor, "keys")
        auditor.goto(f"{url}/audit")
        expect(auditor.locator("#audit-verdict")).to_have_class("ok")
        expect(auditor.locator("#actors")).to_contain_text("quy")
        _shot(auditor, "audit")
        answer = auditor.goto(f"{url}/batches/D2")  # auditors watch too, without controls
        assert answer is not None and answer.status == 200
        expect(auditor.locator("#controls")).to_have_count(0)
    assert Path(SCREENSHOTS / "qa-card.png").stat().st_size > 10_000
