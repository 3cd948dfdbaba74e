"""Letters: one merged, print-ready PDF with a verification code per letter, the mail-house
CSV, and a call list for those no letter can reach."""

from __future__ import annotations

import csv
import re
import stat

import pytest
from pdfminer.high_level import extract_text

from phiguard.errors import Conflict, UsageError
from phiguard.incidents import cases, letters, verification
from tests.incidents.conftest import secrets_of

CODE = re.compile(r"Verification code: ([2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4})")


def _page_texts(path):
    """Each page's text, including the shared body drawn from a form XObject."""
    return extract_text(str(path)).split("\f")[:-1]  # pdfminer ends every page with a form feed


def test_letters_pdf_is_personal_bilingual_and_verifiable(sqlite_hospital, cfg, tmp_path) -> None:
    app, rows = sqlite_hospital.app, sqlite_hospital.rows
    iid = cases.open_from(app, actor="dpo", scan=sqlite_hospital.scan(), cfg=cfg)
    res = letters.write_letters(app, iid, tmp_path / "letters.pdf", actor="dpo", cfg=cfg)
    with_address = [r for r in rows if r["address"]]
    assert res.letters == len(with_address) and res.pages == res.letters  # one page each
    assert stat.S_IMODE(res.pdf.stat().st_mode) == 0o600
    pages = _page_texts(res.pdf)
    assert len(pages) == res.letters
    codes = []
    for page in pages:
        m = CODE.search(page)
        assert m, page[:200]
        codes.append(m.group(1))
        for needle in (
            "Dear ",
            "陳大文",
            "核實碼",
            "What you can do",
            "閣下可以採取的措施",
            "NEVER ask you for your HKID number",
            cfg.hotline,
            cfg.verify_url,
        ):
            # lines wrap without a space in the extracted text: compare without whitespace
            assert "".join(needle.split()) in "".join(page.split()), needle
    assert len(set(codes)) == len(codes)
    names = {r["name_en"] for r in with_address}
    assert {next(n for n in names if f"Dear {n}," in p) for p in pages} == names
    assert verification.check(app, codes[0], client="cli:test", cfg=cfg).genuine
    with open(res.csv, newline="", encoding="utf-8") as f:
        manifest = list(csv.DictReader(f))
    assert len(manifest) == res.letters and manifest[0]["first_page"] == "1"
    assert {m["name_en"] for m in manifest} == names and manifest[0]["address_1"]
    # nothing left to print: the postal notices were handed over
    with pytest.raises(Conflict, match="already"):
        letters.write_letters(app, iid, tmp_path / "again.pdf", actor="dpo", cfg=cfg)


def test_no_plaintext_identifiers_outside_the_requested_files(
    sqlite_hospital, cfg, tmp_path
) -> None:
    app = sqlite_hospital.app
    iid = cases.open_from(app, actor="dpo", scan=sqlite_hospital.scan(), cfg=cfg)
    letters.write_letters(app, iid, tmp_path / "letters.pdf", actor="dpo", cfg=cfg)
    letters.write_call_list(app, iid, tmp_path / "calls.csv", actor="dpo", cfg=cfg)
    needles = [s.encode() for s in secrets_of(sqlite_hospital.rows)]
    for path in app.home.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(n in data for n in needles), path


def test_call_list_covers_the_unreachable(sqlite_hospital, cfg, tmp_path) -> None:
    app = sqlite_hospital.app
    iid = cases.open_from(app, actor="dpo", scan=sqlite_hospital.scan(), cfg=cfg)
    letters.write_letters(app, iid, tmp_path / "letters.pdf", actor="dpo", cfg=cfg)
    n = letters.write_call_list(app, iid, tmp_path / "calls.csv", actor="dpo", cfg=cfg)
    with open(tmp_path / "calls.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert n == len(rows) == 1
    assert rows[0]["reason"].startswith("no channel on file") and rows[0]["phone"] == ""
    assert "hang up and call us back" in rows[0]["script"] and cfg.hotline in rows[0]["script"]
    assert stat.S_IMODE((tmp_path / "calls.csv").stat().st_mode) == 0o600


def test_letters_bad_input(sqlite_hospital, cfg, tmp_path) -> None:
    app = sqlite_hospital.app
    empty = cases.open_from(app, actor="dpo", title="nobody yet", cfg=cfg)
    with pytest.raises(Conflict, match="nobody to write to"):
        letters.write_letters(app, empty, tmp_path / "l.pdf", actor="dpo", cfg=cfg)
    with pytest.raises(UsageError, match=r"\.pdf"):
        letters.write_letters(app, empty, tmp_path / "l.txt", actor="dpo", cfg=cfg)
    assert list(tmp_path.glob("l.*")) == []


def test_merged_pdf_text_extracts_in_order(sqlite_hospital, cfg, tmp_path) -> None:
    app = sqlite_hospital.app
    iid = cases.open_from(app, actor="dpo", scan=sqlite_hospital.scan(3), cfg=cfg)
    res = letters.write_letters(app, iid, tmp_path / "l.pdf", actor="dpo", cfg=cfg)
    text = extract_text(str(res.pdf))
    refs = re.findall(r"INC-2026-0001-C\d+-(\d{6})", text)
    assert refs == sorted(refs) and len(set(refs)) == res.letters


def test_letters_after_an_app_campaign_reach_everyone_with_an_address(
    sqlite_hospital, cfg, tmp_path
) -> None:
    """The real incident told patients by app AND by post: a letter is not skipped because the
    app campaign listed post as a fallback it never needed."""
    from phiguard.incidents import notify
    from phiguard.incidents.transports import MockTransport

    app = sqlite_hospital.app
    iid = cases.open_from(app, actor="dpo", scan=sqlite_hospital.scan(), cfg=cfg)
    camp = notify.create_campaign(app, iid, "app,sms,post,phone", actor="dpo", cfg=cfg)
    notify.dispatch(
        app,
        camp.campaign_id,
        {"app": MockTransport("app"), "sms": MockTransport("sms")},
        actor="dpo",
        cfg=cfg,
    )
    first = letters.write_letters(app, iid, tmp_path / "a.pdf", actor="dpo", cfg=cfg)
    assert first.letters == 1  # only the patient whose only channel is post, from the plan
    second = letters.write_letters(app, iid, tmp_path / "b.pdf", actor="dpo", cfg=cfg)
    with_address = [r for r in sqlite_hospital.rows if r["address"]]
    assert first.letters + second.letters == len(with_address)
