"""`cardline audit`: the tamper-evident audit trail — verify it (the journal, or an export
offline), export it for an outside auditor, sign checkpoints of its chain heads.

Exit codes of ``verify``: 0 the trail holds, 1 it does not (the first bad event named by its
seq and chain), 2 it could not be read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from personalization.cli.common import (
    ConfigOption,
    JsonOption,
    as_person,
    command_group,
    console,
    err_console,
    line_setup,
    reported,
)
from personalization.config import DEFAULT_CONFIG
from personalization.service import audit, auditexport
from personalization.service.audit import AuditResult, Finding, Problem

app = command_group(help="The tamper-evident audit trail: verify it, export it for an outside "
                         "auditor, sign checkpoints of its chain heads.", no_args_is_help=True)
ExportOption = Annotated[Path | None, typer.Option(
    "--export", help="verify this export offline (no database, no line.yaml needed)")]
CertificateOption = Annotated[Path | None, typer.Option(
    "--certificate", help="the audit certificate(s) you hold (PEM): trust only these")]
LangOption = Annotated[Literal["en", "vi"], typer.Option("--lang", help="en or vi")]

_Text = Callable[[Mapping[str, Any]], str]
_REASONS: dict[Problem, tuple[_Text, _Text]] = {
    Problem.EVENT_CHANGED: (lambda d: "its hash does not follow (changed after it was written)",
                            lambda d: "mã băm không khớp (đã bị sửa sau khi ghi)"),
    Problem.EVENT_MISSING: (lambda d: "this event is missing (a gap in the numbering)",
                            lambda d: "thiếu sự kiện này (số thứ tự bị hổng)"),
    Problem.EVENTS_CUT_OFF: (lambda d: f"the log ends before seq {d['named']}, which the chain "
                                       "head or a signed checkpoint names (events deleted)",
                             lambda d: f"nhật ký dừng trước số {d['named']} mà đầu chuỗi hoặc "
                                       "điểm kiểm tra đã ký ghi nhận (sự kiện bị xoá)"),
    Problem.EVENTS_PAST_HEAD: (lambda d: f"events past the chain head (seq {d['head']})",
                               lambda d: f"có sự kiện sau đầu chuỗi (số {d['head']})"),
    Problem.HEAD_MISMATCH: (lambda d: "the last event is not the one the chain head names",
                            lambda d: "sự kiện cuối không phải sự kiện mà đầu chuỗi ghi nhận"),
    Problem.OUT_OF_ORDER: (lambda d: "the chain's events are not together in the export",
                           lambda d: "các sự kiện của chuỗi không liền nhau trong bản xuất"),
    Problem.REHASHED: (lambda d: f"the events from here to seq {d['through']} were changed and "
                                 f"re-hashed: the signed {d['by']} at seq {d['through']} names "
                                 "another head",
                       lambda d: f"các sự kiện từ đây đến số {d['through']} đã bị sửa và băm "
                                 f"lại: {d['by']} đã ký ở số {d['through']} ghi đầu chuỗi khác"),
    Problem.SIGNATURE: (lambda d: f"the checkpoint's signature does not verify ({d['error']})",
                        lambda d: f"chữ ký của điểm kiểm tra không hợp lệ ({d['error']})"),
    Problem.KEY_UNTRUSTED: (lambda d: f"an audit certificate you did not name (SHA-256 "
                                      f"{d['sha256']})",
                            lambda d: f"chứng thư kiểm toán không được tin cậy (SHA-256 "
                                      f"{d['sha256']})"),
    Problem.GUARDS: (lambda d: "the append-only triggers are missing, disabled or changed: "
                               + ", ".join(d["guards"]),
                     lambda d: "các trigger chỉ-ghi-thêm bị xoá, tắt hoặc sửa: "
                               + ", ".join(d["guards"])),
    Problem.CARD_STATE: (lambda d: f"card {d['card']} of batch {d['batch']} is {d['row']} in "
                                   f"the cards table, {d['events']} by its events",
                         lambda d: f"thẻ {d['card']} của lô {d['batch']} là {d['row']} trong "
                                   f"bảng cards, {d['events']} theo sự kiện"),
    Problem.CARD_UNRECORDED: (lambda d: f"card {d['card']} of batch {d['batch']} has no event",
                              lambda d: f"thẻ {d['card']} của lô {d['batch']} không có sự kiện"),
    Problem.CARD_GONE: (lambda d: f"card {d['card']} of batch {d['batch']} has events but no row",
                        lambda d: f"thẻ {d['card']} của lô {d['batch']} có sự kiện nhưng mất dòng"),
    Problem.CARD_APPLICATION: (lambda d: f"card {d['card']} of batch {d['batch']} belongs to "
                                         f"{d['row']} in its row, {d['events']} by its events",
                               lambda d: f"thẻ {d['card']} của lô {d['batch']} thuộc {d['row']} "
                                         f"theo dòng, {d['events']} theo sự kiện"),
    Problem.APPLICATION_STATE: (lambda d: f"application {d['application']} of batch "
                                          f"{d['batch']} is {d['row']} in its row, "
                                          f"{d['events']} by its events",
                                lambda d: f"hồ sơ {d['application']} của lô {d['batch']} là "
                                          f"{d['row']} theo dòng, {d['events']} theo sự kiện"),
    Problem.APPLICATION_CARDS: (lambda d: f"application {d['application']} of batch "
                                          f"{d['batch']} is {d['row']} with "
                                          f"{d['handed_out_cards']} handed-out card(s)",
                                lambda d: f"hồ sơ {d['application']} của lô {d['batch']} là "
                                          f"{d['row']} với {d['handed_out_cards']} thẻ đã giao"),
    Problem.APPLICATION_GONE: (lambda d: f"application {d['application']} of batch "
                                         f"{d['batch']} has events but no row",
                               lambda d: f"hồ sơ {d['application']} của lô {d['batch']} có sự "
                                         "kiện nhưng mất dòng"),
    Problem.ACTOR: (lambda d: f"the actor named ({d['actor']}) is not the event's",
                    lambda d: f"người thực hiện ghi ({d['actor']}) không phải của sự kiện"),
}


def reason(finding: Finding, lang: Literal["en", "vi"] = "en") -> str:
    """A finding in words."""
    english, vietnamese = _REASONS[finding.code]
    return (english if lang == "en" else vietnamese)(finding.details)


def _line(finding: Finding, lang: Literal["en", "vi"]) -> str:
    if finding.seq is None:
        return reason(finding, lang)
    return f"seq {finding.seq} (chain {finding.chain}): {reason(finding, lang)}"


def _show(result: AuditResult, lang: Literal["en", "vi"]) -> None:
    if result.ok:
        console.print(f"audit trail holds: {result.events} events, {result.checkpoints} "
                      "checkpoints", markup=False, highlight=False, soft_wrap=True)
        for sha256 in result.certificates:  # to compare with the one recorded out of band
            console.print(f"audit certificate SHA-256: {sha256}", markup=False,
                          highlight=False, soft_wrap=True)
        if result.uncovered:
            console.print(f"{result.uncovered} event(s) after the last checkpoint are vouched "
                          "for by their hashes only: run `cardline audit checkpoint`",
                          markup=False, highlight=False, soft_wrap=True)
        return
    first = result.first_bad
    headline = first or result.findings[0]
    err_console.print(f"first bad event: {_line(first, lang)}" if first is not None else
                      f"audit trail does not hold: {reason(headline, lang)}",
                      markup=False, highlight=False, soft_wrap=True)
    for finding in result.findings:
        if finding is not headline:
            err_console.print(f"also: {_line(finding, lang)}", markup=False, highlight=False,
                              soft_wrap=True)
    if result.omitted:
        err_console.print(f"and {result.omitted} more", markup=False, highlight=False,
                          soft_wrap=True)


@app.command()
def verify(config: ConfigOption = DEFAULT_CONFIG, export: ExportOption = None,
           certificate: CertificateOption = None, as_json: JsonOption = False,
           lang: LangOption = "en") -> None:
    """Check the audit trail: every chain re-hashed, held to its head and its signed
    checkpoints, every checkpoint's signature, the append-only triggers, and the cards' and
    applications' states against their events. With `--export FILE`, check an export
    offline. Exit 0 when it holds, 1 naming the first bad event by its seq and chain."""
    with reported():
        trusted = audit.read_certificates(certificate) if certificate is not None else None
        if export is not None:  # an export is checked offline, by anyone who holds it
            result = auditexport.verify_export(export, trusted=trusted)
        else:
            cfg = line_setup(config).config
            as_person(cfg, "audit.verify")
            result = audit.verify_line(cfg, trusted=trusted)
    if as_json:
        console.print_json(json.dumps(result.as_dict()))
    else:
        _show(result, lang)
    if not result.ok:
        raise typer.Exit(1)


@app.command("export")
def export_trail(
        out: Annotated[Path, typer.Option("--out", "-o", help="the file to write (a tar)")],
        config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Write the audit trail into one file for an outside auditor: the events (each naming
    its actor), the signed checkpoints, the audit certificate and VERIFY.txt, which says how
    to check it with openssl alone."""
    cfg = line_setup(config).config
    as_person(cfg, "audit.export")
    with reported():
        done = auditexport.export_line(cfg, out)
    console.print(f"audit trail exported: {done.path} ({done.events} events, "
                  f"{done.checkpoints} checkpoints)", markup=False, highlight=False, soft_wrap=True)


@app.command()
def checkpoint(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Sign the head of every chain that moved since its last checkpoint with the audit key
    on the line's HSM token (made there on first use). Run it often (a scheduled job): events
    after the last checkpoint are vouched for by their hashes alone."""
    cfg = line_setup(config).config
    as_person(cfg, "audit.checkpoint")
    with reported():
        made = audit.checkpoint(cfg)
    for point in made:
        console.print(f"checkpoint: chain {point.chain} at seq {point.seq} (head {point.head})",
                      markup=False, highlight=False, soft_wrap=True)
    if not made:
        console.print("no chain head moved since its last checkpoint", markup=False,
                      soft_wrap=True)
