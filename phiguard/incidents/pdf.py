"""PDF plumbing shared by reports and letters: fonts and line wrapping for mixed
English / Traditional Chinese text with ReportLab.

Why this font: ReportLab embeds TrueType outlines only. Debian's Noto CJK is OpenType/CFF
("postscript outlines are not supported"), and the built-in CID font ``MSung-Light`` is not
embedded, so it does not render everywhere a printed letter must. AR PL UMing
(``fonts-arphic-uming``, face 2 of ``uming.ttc`` = UMing TW) is TrueType with Traditional
Chinese glyphs and works; it is a setting so a hospital can use its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.fonts import addMapping
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from phiguard.errors import UsageError

CJK = "PhiguardCJK"
LATIN = "Helvetica"
LATIN_BOLD = "Helvetica-Bold"


@lru_cache(maxsize=4)
def register_cjk(path: Path, subfont: int) -> str:
    if not path.is_file():
        raise UsageError(
            f"Chinese font {path} is missing: install it with `apt-get install -y "
            f"fonts-arphic-uming` or set PHIGUARD_INCIDENTS_CJK_FONT"
        )
    try:
        pdfmetrics.registerFont(TTFont(CJK, str(path), subfontIndex=subfont))
        for bold in (0, 1):
            for italic in (0, 1):
                addMapping(CJK, bold, italic, CJK)
    except Exception as exc:  # ReportLab raises TTFError and plain errors for unusable fonts
        raise UsageError(f"Chinese font {path} (face {subfont}) cannot be used: {exc}") from None
    return CJK


@contextmanager
def binary_streams() -> Iterator[None]:
    """Write page streams as plain Flate (no ASCII85 armour): a quarter smaller and faster.
    ReportLab reads the switch from its global config when each page is created."""
    before = rl_config.useA85
    rl_config.useA85 = 0
    try:
        yield
    finally:
        rl_config.useA85 = before


_CJK_RANGES = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f"
_CJK_RUN = re.compile(f"([{_CJK_RANGES}]+)")
_CJK_CHAR = re.compile(f"[{_CJK_RANGES}]")


def is_cjk(ch: str) -> bool:
    return _CJK_CHAR.match(ch) is not None


@lru_cache(maxsize=4096)
def runs(text: str) -> tuple[tuple[bool, str], ...]:
    """Split text into runs of Chinese and of everything else (cached: letters repeat a lot)."""
    if text.isascii():
        return ((False, text),)
    return tuple((i % 2 == 1, seg) for i, seg in enumerate(_CJK_RUN.split(text)) if seg)


def width(text: str, size: float, latin: str = LATIN) -> float:
    """Width of mixed text: Chinese runs in the CJK face, the rest in ``latin``."""
    return sum(pdfmetrics.stringWidth(seg, CJK if c else latin, size) for c, seg in runs(text))


def draw(c: Any, x: float, y: float, text: str, size: float, latin: str = LATIN) -> None:
    """Draw mixed text at (x, y): Helvetica for Latin, the CJK face for Chinese."""
    t = c.beginText(x, y)
    for cjk, seg in runs(text):
        t.setFont(CJK if cjk else latin, size)
        t.textOut(seg)
    c.drawText(t)


def markup(text: str) -> str:
    """Paragraph markup for mixed text (escaped; Chinese runs in the CJK face)."""
    return "".join(
        f'<font face="{CJK}">{escape(seg)}</font>' if c else escape(seg) for c, seg in runs(text)
    )


def wrap(text: str, size: float, max_width: float, latin: str = LATIN) -> list[str]:
    """Greedy wrap that breaks between words in English and between characters in Chinese
    (where no spaces separate words), never inside an English word unless it cannot fit."""
    lines: list[str] = []
    for para in text.split("\n"):
        tokens: list[str] = []
        word = ""
        for ch in para:
            if is_cjk(ch):
                if word:
                    tokens.append(word)
                    word = ""
                tokens.append(ch)
            elif ch == " ":
                tokens.append(word + " ")
                word = ""
            else:
                word += ch
        if word:
            tokens.append(word)
        line = ""
        for tok in tokens:
            trial = line + tok
            if line and width(trial.rstrip(), size, latin) > max_width:
                lines.append(line.rstrip())
                line = tok.lstrip()
                # Chinese punctuation must not start a line: pull it back to the previous one
                if line and line[0] in "，。、；：！？）」』" and lines:
                    lines[-1] += line[0]
                    line = line[1:]
            else:
                line = trial
        lines.append(line.rstrip())
    return lines


def render_report(doc: dict[str, Any], out: Path, font: Path, subfont: int) -> bytes:
    """Lay a report document (:func:`phiguard.incidents.reports.build`) out with ReportLab's
    flowables: a title, then per section a label/value table, labels in both languages when
    the report is bilingual. Written to ``out`` atomically; returns the PDF bytes."""
    register_cjk(font, subfont)
    body = ParagraphStyle("body", fontName=LATIN, fontSize=9, leading=12.5, wordWrap="CJK")
    label = ParagraphStyle("label", parent=body, fontSize=8.5, textColor=colors.HexColor("#333333"))
    h1 = ParagraphStyle("h1", fontName=LATIN_BOLD, fontSize=15, leading=19, spaceAfter=2)
    h1zh = ParagraphStyle("h1zh", fontName=LATIN, fontSize=13, leading=17, spaceAfter=6)
    h2 = ParagraphStyle(
        "h2", fontName=LATIN_BOLD, fontSize=11, leading=14, spaceBefore=10, spaceAfter=4
    )
    h2zh = ParagraphStyle("h2zh", parent=body, fontSize=10, spaceAfter=4)
    bi = doc["bilingual"]
    story: list[Any] = [Paragraph(markup(doc["title"]["en"]), h1)]
    if doc["title"]["zh"]:
        story.append(Paragraph(markup(doc["title"]["zh"]), h1zh))
    story.append(
        Paragraph(
            markup(
                f"{doc['hospital']['en']}"
                + (f" / {doc['hospital']['zh']}" if bi else "")
                + f" · {doc['incident_id']} · {doc['generated_at']} HKT"
            ),
            body,
        )
    )
    for sec in doc["sections"]:
        story.append(Paragraph(markup(sec["heading"]["en"]), h2))
        if bi and sec["heading"]["zh"]:
            story.append(Paragraph(markup(sec["heading"]["zh"]), h2zh))
        rows = []
        for it in sec["items"]:
            lab = markup(it["label"]["en"]) + (
                f"<br/>{markup(it['label']['zh'])}" if bi and it["label"]["zh"] else ""
            )
            rows.append(
                [
                    Paragraph(lab, label),
                    Paragraph(markup(it["value"]).replace("\n", "<br/>"), body),
                ]
            )
        if rows:
            t = Table(rows, colWidths=[55 * mm, 115 * mm])
            t.setStyle(
                TableStyle(
                    [
                        ("VALIGN", (0, 0), (-1, -1), "TOP"),
                        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#bbbbbb")),
                        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
                        ("TOPPADDING", (0, 0), (-1, -1), 3),
                    ]
                )
            )
            story.append(t)
    story += [
        Spacer(1, 8),
        Paragraph(
            markup(
                "Generated by phiguard from the incident record. "
                "Contains no patient names or identity numbers."
            ),
            label,
        ),
    ]
    tmp = out.with_name(out.name + ".part")
    try:
        pdf = SimpleDocTemplate(
            str(tmp),
            pagesize=A4,
            title=doc["title"]["en"],
            author=doc["hospital"]["en"],
            leftMargin=18 * mm,
            rightMargin=18 * mm,
            topMargin=16 * mm,
            bottomMargin=16 * mm,
        )
        pdf.build(story)
        data = tmp.read_bytes()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return data
