"""PDF plumbing shared by reports and letters: fonts and line wrapping for mixed
English / Traditional Chinese text with ReportLab.

Why this font: ReportLab embeds TrueType outlines only. Debian's Noto CJK is OpenType/CFF
("postscript outlines are not supported"), and the built-in CID font ``MSung-Light`` is not
embedded, so it does not render everywhere a printed letter must. AR PL UMing
(``fonts-arphic-uming``, face 2 of ``uming.ttc`` = UMing TW) is TrueType with Traditional
Chinese glyphs and works; it is a setting so a hospital can use its own.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.fonts import addMapping
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

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


def is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (
        0x2E80 <= o <= 0x9FFF
        or 0xF900 <= o <= 0xFAFF
        or 0xFF00 <= o <= 0xFFEF
        or 0x3000 <= o <= 0x303F
    )


def runs(text: str) -> list[tuple[bool, str]]:
    """Split text into runs of Chinese and of everything else (spaces join the current run)."""
    out: list[tuple[bool, str]] = []
    for ch in text:
        c = is_cjk(ch) if ch != " " else (out[-1][0] if out else False)
        if out and out[-1][0] == c:
            out[-1] = (c, out[-1][1] + ch)
        else:
            out.append((c, ch))
    return out


def width(text: str, size: float, latin: str = LATIN) -> float:
    """Width of mixed text: Chinese runs in the CJK face, the rest in ``latin``."""
    return sum(pdfmetrics.stringWidth(seg, CJK if c else latin, size) for c, seg in runs(text))


def draw(c: Any, x: float, y: float, text: str, size: float, latin: str = LATIN) -> None:
    """Draw mixed text at (x, y): Helvetica for Latin, the CJK face for Chinese."""
    for cjk, seg in runs(text):
        font = CJK if cjk else latin
        c.setFont(font, size)
        c.drawString(x, y, seg)
        x += pdfmetrics.stringWidth(seg, font, size)


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
