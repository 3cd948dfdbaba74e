"""PDF plumbing shared by reports and letters: fonts and line wrapping for mixed
English / Traditional Chinese text with ReportLab.

Why this font: ReportLab embeds TrueType outlines only. Debian's Noto CJK is OpenType/CFF
("postscript outlines are not supported"), and the built-in CID font ``MSung-Light`` is not
embedded, so it does not render everywhere a printed letter must. AR PL UMing
(``fonts-arphic-uming``, face 2 of ``uming.ttc`` = UMing TW) is TrueType with Traditional
Chinese glyphs and works; it is a setting so a hospital can use its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab import rl_config
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
