"""Letters: one print-ready merged PDF of every queued postal notice, plus the mail house's
CSV manifest, in the folder the user chose.

These two files are the only place phiguard writes a patient's name and address: the PMI
token is decrypted in memory, the text goes straight into the requested files (created
0600), and nothing is kept elsewhere. The audit log records how many letters were written
and the PDF's SHA-256, never who they were for.

Speed comes from drawing what every letter shares once. The bilingual body is laid out a
single time into PDF form XObjects (one per page of the letter) and each letter page only
references it and adds its own lines — name, address, notice number and verification code.
A 56,000-letter run is then a matter of seconds rather than the minutes a per-letter
flowable layout takes (see docs/bench/incidents.md).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas
from sqlalchemy import insert, select, update

from phiguard.audit.tags import Tag
from phiguard.errors import Conflict, UsageError
from phiguard.incidents import notify, wording
from phiguard.incidents.cases import affected_count, fields_exposed, get, log
from phiguard.incidents.models import Delivery, Notice
from phiguard.incidents.pdf import (
    LATIN,
    LATIN_BOLD,
    binary_streams,
    draw,
    register_cjk,
    width,
    wrap,
)
from phiguard.incidents.settings import IncidentSettings
from phiguard.incidents.transports import MailHouseExport, Message
from phiguard.incidents.verification import CodeBook
from phiguard.storage.models import Patient

if TYPE_CHECKING:
    from phiguard.app import App

W, H = A4
M = 56.0  # margin
BOTTOM = 56.0
CODE_BOX = 64.0  # height reserved on the last page for the verification code


@dataclass
class Slot:
    page: int
    x: float
    y: float
    font: str  # the Latin face; Chinese runs are always drawn in the CJK face
    size: float


@dataclass
class Layout:
    """Static drawing operations per page, and where each letter's own lines go."""

    pages: list[list[tuple[str, float, float, float, str]]] = field(default_factory=list)
    slots: dict[str, Slot] = field(default_factory=dict)


def layout(static: dict[str, Any], ctx: dict[str, str]) -> Layout:
    lay = Layout(pages=[[]])
    full = W - 2 * M
    page, y = 0, H - M

    def text(font: str, size: float, x: float, yy: float, s: str) -> None:
        lay.pages[page].append((font, size, x, yy, s))

    def need(h: float) -> None:
        nonlocal page, y
        if y - h < BOTTOM:
            lay.pages.append([])
            page, y = page + 1, H - M
            text(
                LATIN,
                8,
                M,
                H - M + 14,
                f"{ctx['hospital']} · {ctx['incident_id']} (continued / 續)",
            )

    text(LATIN_BOLD, 13, M, y - 4, ctx["hospital"])
    text(LATIN, 12, M, y - 20, ctx["hospital_zh"])
    text(LATIN, 9, W - M - 160, y - 4, ctx["letter_date"])
    text(LATIN, 9, W - M - 160, y - 16, ctx["letter_date_zh"])
    lay.slots["ref"] = Slot(0, W - M - 160, y - 28, LATIN, 8)
    # the address block sits where a window envelope shows it
    for i, key in enumerate(("name_en", "name_zh", "addr0", "addr1", "addr2", "addr3")):
        lay.slots[key] = Slot(0, M + 10, H - 150 - i * 13, LATIN, 10)
    y = H - 250
    text(LATIN_BOLD, 11, M, y, static["subject_en"])
    text(LATIN, 11, M, y - 15, static["subject_zh"])
    y -= 36
    lay.slots["salutation_en"] = Slot(0, M, y, LATIN, 9.5)
    y -= 15
    for lead, paras in ((11.2, static["paragraphs_en"]), (12.5, static["paragraphs_zh"])):
        for para in paras:
            lines = wrap(para, 9, full)
            need(len(lines) * lead)
            for ln in lines:
                text(LATIN, 9, M, y, ln)
                y -= lead
            y -= 4
        if paras is static["paragraphs_en"]:
            y -= 6
            need(15)
            lay.slots["salutation_zh"] = Slot(page, M, y, LATIN, 9.5)
            y -= 15
    need(30 + CODE_BOX)
    text(LATIN, 9.5, M, y - 6, static["closing_en"])
    text(LATIN, 9.5, M + full / 2, y - 6, static["closing_zh"])
    lay.slots["code_en"] = Slot(page, M + 10, BOTTOM + 30, LATIN_BOLD, 12)
    lay.slots["code_zh"] = Slot(page, M + 10, BOTTOM + 12, LATIN_BOLD, 11)
    text("box", 0, M, BOTTOM + 2, "")
    return lay


def _static_forms(c: canvas.Canvas, lay: Layout) -> None:
    for i, ops in enumerate(lay.pages):
        c.beginForm(f"letter{i}")
        for font, size, x, y, s in ops:
            if font == "box":
                c.setLineWidth(0.8)
                c.rect(x, y, W - 2 * M, 48, stroke=1, fill=0)
            else:
                draw(c, x, y, s, size, font)
        c.endForm()


def _address_lines(address: str) -> list[str]:
    parts = [p.strip() for p in address.replace("\n", ",").split(",") if p.strip()]
    lines: list[str] = []
    for p in parts:
        if lines and width(lines[-1] + ", " + p, 10) < 260:
            lines[-1] += ", " + p
        else:
            lines.append(p)
    if len(lines) > 4:
        lines = [*lines[:3], ", ".join(lines[3:])]
    return lines


@dataclass
class LettersResult:
    incident_id: str
    letters: int
    pages: int
    pdf: Path
    csv: Path
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "letters": self.letters,
            "pages": self.pages,
            "pdf": str(self.pdf),
            "csv": str(self.csv),
            "sha256": self.sha256,
        }


def _private(path: Path) -> Any:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


def write_letters(
    app: App,
    incident_id: str,
    out: Path,
    *,
    actor: str,
    cfg: IncidentSettings | None = None,
    csv_path: Path | None = None,
) -> LettersResult:
    """Render every queued postal notice of the incident into ``out`` and the mail-house CSV
    beside it, and mark them sent. With none queued, a postal campaign is created first for
    every affected patient with an address who has not had a letter yet."""
    cfg = cfg or IncidentSettings()
    out = Path(out)
    if out.suffix.lower() != ".pdf":
        raise UsageError(f"{out}: the letters file must end in .pdf")
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent} is not a folder")
    csv_path = Path(csv_path) if csv_path else out.with_suffix(".csv")
    register_cjk(cfg.cjk_font, cfg.cjk_subfont)
    with app.session() as s:
        get(s, incident_id)
        if affected_count(s, incident_id) == 0:
            raise Conflict(f"{incident_id} has no affected patients; there is nobody to write to")
        waiting = (
            s.scalars(
                select(Notice.id).where(
                    Notice.incident_id == incident_id,
                    Notice.channel == "post",
                    Notice.state == "queued",
                )
            ).first()
            is not None
        )
    if not waiting:  # a postal campaign for everyone with an address who has had no letter
        notify.create_campaign(app, incident_id, "post", actor=actor, cfg=cfg)
    now = app.clock.now()
    book = CodeBook(app)
    with app.session() as s:
        inc = get(s, incident_id)
        ctx = wording.incident_context(s, inc, fields_exposed(s, incident_id), cfg, now)
        renderer = wording.Renderer(wording.load_templates(cfg), ctx, ["post"])
        rows = s.execute(
            select(
                Notice.id,
                Notice.ref,
                Notice.code_nonce,
                Notice.attempts,
                Notice.step,
                Patient.pii,
            )
            .join(Patient, Patient.patient_id == Notice.patient_id)
            .where(
                Notice.incident_id == incident_id,
                Notice.channel == "post",
                Notice.state == "queued",
            )
            .order_by(Notice.id)
        ).all()
    if not rows:
        raise Conflict(
            f"{incident_id} has no letters waiting: every postal notice was already "
            f"handed to the mail house"
        )
    lay = layout(renderer.letter_static(), ctx)
    per = len(lay.pages)
    tmp_pdf, tmp_csv = (
        out.with_name(out.name + ".part"),
        csv_path.with_name(csv_path.name + ".part"),
    )
    mail = MailHouseExport(tmp_csv)
    deliveries = []
    try:
        with _private(tmp_pdf) as fh, binary_streams():
            c = canvas.Canvas(fh, pagesize=A4, pageCompression=1)
            c.setTitle(f"Letters {incident_id}")
            c.setAuthor(cfg.hospital_name)
            _static_forms(c, lay)
            decrypt = app.cipher.decrypt_json
            for seq, (nid, ref, nonce, attempts, step, token) in enumerate(rows, 1):
                pii = decrypt(token, notify.PII)
                name_en = pii.get("name_en") or ""
                name_zh = pii.get("name_zh") or ""
                addr = _address_lines(pii.get("address") or "")
                code = book.code(nonce)
                sal_en, sal_zh = renderer.salutation(name_en, name_zh)
                own = {
                    "ref": f"Notice / 通知編號 {ref}",
                    "name_en": name_en,
                    "name_zh": name_zh,
                    "salutation_en": sal_en,
                    "salutation_zh": sal_zh,
                    "code_en": f"Verification code: {code}",
                    "code_zh": f"核實碼：{code}",
                }
                own.update({f"addr{i}": line for i, line in enumerate(addr)})
                for p in range(per):
                    c.doForm(f"letter{p}")
                    for key, value in own.items():
                        slot = lay.slots[key]
                        if slot.page == p and value:
                            draw(c, slot.x, slot.y, value, slot.size, slot.font)
                    c.showPage()
                message_id = f"{ref}:post:{step}.{attempts + 1}"
                meta = {
                    "seq": str(seq),
                    "notice_ref": ref,
                    "pages": str(per),
                    "first_page": str((seq - 1) * per + 1),
                    "name_en": name_en,
                    "name_zh": name_zh,
                    "language": "en+zh",
                    **{f"address_{i + 1}": a for i, a in enumerate(addr)},
                }
                res = mail.send(Message(message_id, "post", ref, "", meta=meta))
                deliveries.append(
                    {
                        "notice_id": nid,
                        "channel": "post",
                        "attempt": attempts + 1,
                        "message_id": message_id,
                        "state": "sent",
                        "ts": now,
                        "updated_at": now,
                        "transport_ref": res.transport_ref,
                        "error": "",
                    }
                )
            c.save()
        mail.close()
        digest = hashlib.sha256(tmp_pdf.read_bytes()).hexdigest()
        with app.session() as s:
            for i in range(0, len(deliveries), 5000):
                s.execute(insert(Delivery), deliveries[i : i + 5000])
            ids = [r[0] for r in rows]
            for i in range(0, len(ids), 1000):
                s.execute(
                    update(Notice)
                    .where(Notice.id.in_(ids[i : i + 1000]))
                    .values(state="sent", updated_at=now)
                )
            log(
                s,
                incident_id,
                now,
                "letters",
                f"{len(rows):,} letters ({len(rows) * per:,} pages) "
                f"written for the mail house by {actor} (sha256 {digest[:16]}…)",
                actor,
            )
        os.replace(tmp_pdf, out)
        os.replace(tmp_csv, csv_path)
    finally:
        mail.close()
        for leftover in (tmp_pdf, tmp_csv):
            leftover.unlink(missing_ok=True)
    app.record(
        Tag.LETTERS_WRITTEN,
        actor=actor,
        subject=incident_id,
        letters=len(rows),
        pages=len(rows) * per,
        pdf_sha256=digest,
        file=out.name,
    )
    return LettersResult(incident_id, len(rows), len(rows) * per, out, csv_path, digest)


CALL_COLUMNS = ("notice_ref", "name_en", "name_zh", "phone", "reason", "script")


def write_call_list(
    app: App, incident_id: str, out: Path, *, actor: str, cfg: IncidentSettings | None = None
) -> int:
    """The telephone call list: every notice waiting on the ``phone`` channel, with the
    bilingual script and the patient's code. Patients with no number on file are marked
    for tracing (clinic records, next appointment). Written only to ``out`` (0600)."""
    import csv

    cfg = cfg or IncidentSettings()
    out = Path(out)
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent} is not a folder")
    now = app.clock.now()
    book = CodeBook(app)
    with app.session() as s:
        inc = get(s, incident_id)
        ctx = wording.incident_context(s, inc, fields_exposed(s, incident_id), cfg, now)
        renderer = wording.Renderer(wording.load_templates(cfg), ctx, ["phone"])
        rows = s.execute(
            select(Notice.ref, Notice.plan, Notice.code_nonce, Patient.pii)
            .join(Patient, Patient.patient_id == Notice.patient_id)
            .where(
                Notice.incident_id == incident_id,
                Notice.channel == "phone",
                Notice.state == "queued",
            )
            .order_by(Notice.id)
        ).all()
    tmp = out.with_name(out.name + ".part")
    try:
        with (
            _private(tmp) as raw,
            open(raw.fileno(), "w", newline="", encoding="utf-8", closefd=False) as fh,
        ):
            w = csv.writer(fh)
            w.writerow(CALL_COLUMNS)
            for ref, plan, nonce, token in rows:
                pii = app.cipher.decrypt_json(token, notify.PII)
                phone = pii.get("phone") or ""
                chain = plan.split(",")
                reason = (
                    "no channel on file: trace and call"
                    if not phone and chain == ["phone"]
                    else "fallback after " + "/".join(c for c in chain if c != "phone")
                    if len(chain) > 1
                    else "telephone requested"
                )
                w.writerow(
                    [
                        ref,
                        pii.get("name_en") or "",
                        pii.get("name_zh") or "",
                        phone,
                        reason,
                        renderer.phone(code=book.code(nonce), ref=ref),
                    ]
                )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    with app.session() as s:
        log(
            s,
            incident_id,
            now,
            "call_list",
            f"call list of {len(rows):,} patients written by {actor}",
            actor,
        )
    app.record(
        Tag.CALL_LIST_WRITTEN, actor=actor, subject=incident_id, rows=len(rows), file=out.name
    )
    return len(rows)
