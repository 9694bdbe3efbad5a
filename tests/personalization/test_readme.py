"""The README's production-style run, verbatim, with the shipped line.yaml: what a new user
types after `make setup` and the key ceremonies must hand out every card."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from applets.virtual.bank import EncoderBank
from personalization.errors import ConfigError
from personalization.service.line import pick_reader
from tests.support.browser import free_port

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _cardline(cwd: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    assert argv[0] == "cardline", argv
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "CARDLINE_CONFIG")}
    return subprocess.run([sys.executable, "-m", "personalization", *argv[1:]], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600, check=False)


def readme_script(after: str) -> str:
    """The first ``sh`` block after the line containing ``after``, as its text."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(after)
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert block is not None, f"no sh block after {after!r}"
    return block.group(1)


def _bash(cwd: Path, script: str) -> subprocess.CompletedProcess[str]:
    """A README block run as it is, by bash, with `cardline` on the PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "CARDLINE_CONFIG")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900, check=False)


def test_the_readme_production_run_hands_out_every_card(encoder_bank: EncoderBank,
                                                        tmp_path: Path) -> None:
    """The README's people-and-keys block, then its run (`login`, `line up`, `applications
    synth`, the registry's `openssl cms -sign`, `batch create`, `batch run`, `batch report`,
    `batch results` and the registry's `openssl cms -verify`, `line down`, `logout`),
    verbatim by bash on the shipped line.yaml: 50 of 50 handed out, the stock reconciles, the
    results say so, the line is down afterwards, and the passphrase files are the owner's
    alone."""
    shutil.copy(ROOT / "line.yaml", tmp_path / "line.yaml")
    people = readme_script("A production-style run on the embedded default")
    run = readme_script("Then the run, as the operator:")
    assert "cardline keys init --officer" in people and run.splitlines()[1].startswith(
        "cardline line up")
    encoder_bank.down()  # one pcscd per machine: the README's line brings up its own
    try:
        done = _cardline(tmp_path, ["cardline", "keys", "setup-embedded"])  # `make setup`
        assert done.returncode == 0, done.stderr
        for script in (people, run):
            done = _bash(tmp_path, script)
            assert done.returncode == 0, (script, done.stdout, done.stderr)
    finally:  # `line down` is the operator's, whatever stopped the blocks
        _bash(tmp_path, "cardline login lan --passphrase-file lan.pass; cardline line down")
        encoder_bank.up()
    report = json.loads((tmp_path / "work" / "B1-report" / "report.json").read_text("utf-8"))
    assert report["applications"] == {"handed_out": 50, "failed": 0, "pending": 0}
    assert report["stock"]["reconciled"] and report["stock"]["fed"] == 50
    # the registry's side: the signed batch went in, the results openssl verified came out
    header, *results = [json.loads(line) for line in (
        tmp_path / "work" / "B1-results.jsonl").read_text("utf-8").splitlines()]
    assert (header["batch"], header["registry_batch"]) == ("B1", "RB-2026-0001")
    assert [r["status"] for r in results] == ["issued"] * 50
    assert not (tmp_path / ".cardline" / "printers" / "simline.pid").exists()
    assert all(p.stat().st_mode & 0o077 == 0 for p in tmp_path.glob("*.pass"))


def test_a_reader_name_that_fits_several_encoders_is_a_clear_error() -> None:
    """`encoder.reader` naming one encoder picks its first slot; naming several (or none)
    is a configuration error that names the candidates."""
    readers = ["Encoder 0 00 00", "Encoder 0 00 01", "Encoder 1 00 00", "Encoder 1 00 01",
               "Encoder 10 00 00"]
    assert pick_reader("s1", "Encoder 0", readers) == "Encoder 0 00 00"
    assert pick_reader("s1", "Encoder 1", readers) == "Encoder 1 00 00"
    assert pick_reader("s1", "Encoder 0 00 01", readers) == "Encoder 0 00 01"
    with pytest.raises(ConfigError, match=r"several encoders \(Encoder 0 00, Encoder 1 00"):
        pick_reader("s1", "Encoder", readers)
    with pytest.raises(ConfigError, match="no PC/SC reader is called 'Encoder 7'"):
        pick_reader("s1", "Encoder 7", readers)


def test_the_demo_then_its_qa_desk_commands_as_it_prints_them(encoder_bank: EncoderBank,
                                                              tmp_path: Path) -> None:
    """`cardline demo` on the shipped line.yaml after `make setup` hands out its cards, and
    the QA-desk commands it prints, run verbatim, pass the card it names."""
    shutil.copy(ROOT / "line.yaml", tmp_path / "line.yaml")
    encoder_bank.down()
    try:
        assert _cardline(tmp_path, ["cardline", "keys", "setup-embedded"]).returncode == 0
        demo = _cardline(tmp_path, ["cardline", "demo", "--cards", "3"])
        assert demo.returncode == 0, demo.stderr
        lines = demo.stdout.splitlines()
        desk = [line.strip() for line in lines[lines.index(
            "put a card of this demo on the QA desk:") + 1:]]
        assert [c.split()[1] for c in desk] == ["login", "line", "line", "qa", "line", "logout"]
        for command in desk:
            done = _cardline(tmp_path, shlex.split(command))
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            if " qa verify " in f" {command} ":  # the shipped chip is EAC: PACE by its CAN
                assert "--can " in command and "PASS" in done.stdout
                assert "PACE" in done.stdout and "TA" in done.stdout, done.stdout
    finally:
        _bash(tmp_path, "cardline login demo-operator --passphrase-file "
              ".cardline/demo-people/demo-operator.pass; cardline line down")
        encoder_bank.up()
    report = json.loads((tmp_path / "demo-out" / "report.json").read_text("utf-8"))
    assert report["applications"]["handed_out"] == 3
    assert (tmp_path / "demo-out" / "cards").is_dir()
    assert {tuple(c["qa"]["protocols"]) for c in report["cards"]
            if c["state"] == "handed_out"} == {("PACE", "PA", "CA", "TA", "AA")}


def _interruptible() -> None:
    """In the child before exec: SIGINT back to its default, so Python turns it into
    KeyboardInterrupt (an ignored signal stays ignored across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_the_demo_with_its_dashboard_open(encoder_bank: EncoderBank, tmp_path: Path) -> None:
    """`cardline demo --serve` as the README shows it: the dashboard on the demo's line while
    it runs, where the demo operator logs in with the passphrase file the demo names and sees
    the batch handed out; it stays open after the demo until Ctrl-C, and exits cleanly."""
    shutil.copy(ROOT / "line.yaml", tmp_path / "line.yaml")
    port = free_port()
    assert _cardline(tmp_path, ["cardline", "keys", "setup-embedded"]).returncode == 0
    encoder_bank.down()
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "CARDLINE_CONFIG")}
    # Ctrl-C as a terminal delivers it: a test run started in the background (`make test &`)
    # has SIGINT ignored, and a child inherits that, so the demo could never be interrupted
    demo = subprocess.Popen([sys.executable, "-m", "personalization", "demo", "--cards", "2",
                             "--serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_interruptible)
    try:
        assert demo.stdout is not None
        said = [demo.stdout.readline() for _ in range(2)]
        opened = next(line for line in said if line.startswith("dashboard: "))
        url, file = re.findall(r"(http://\S+/) .*passphrase in (\S+)\)", opened)[0]
        assert url == f"http://127.0.0.1:{port}/"
        with httpx.Client(base_url=url, timeout=10) as client:
            token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
            assert token is not None
            phrase = (tmp_path / file).read_text(encoding="utf-8").strip()
            logged = client.post("/login", data={"csrf": token.group(1),
                                                 "name": "demo-operator", "passphrase": phrase})
            assert logged.status_code == 303, logged.text
            while "Ctrl-C ends it" not in (line := demo.stdout.readline()):
                assert line, "the demo ended without keeping its dashboard open"
            status = client.get("/api/status").json()
            assert status["batch"].startswith("demo-")
            assert status["progress"]["applications"]["handed_out"] == 2
            assert {s["state"] for s in status["line"]["stations"]} == {"off"}
        demo.send_signal(signal.SIGINT)
        # read what it still says while it ends: a wait() on a full pipe never returns
        try:
            rest, _ = demo.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            demo.kill()
            rest, _ = demo.communicate()
            pytest.fail(f"the demo did not end within 60 s of Ctrl-C; it said: {rest[-3000:]}")
        assert demo.returncode == 0, rest[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        _bash(tmp_path, "cardline line down || true")
        encoder_bank.up()
