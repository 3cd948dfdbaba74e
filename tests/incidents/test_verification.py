from __future__ import annotations

import re
import sqlite3
from datetime import timedelta

from phiguard.incidents import cases, notify, verification
from phiguard.incidents.transports import MockTransport
from phiguard.incidents.verification import ALPHABET, CodeBook

CODE = re.compile(r"[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}")


def _sent_codes(h, cfg):
    app = h.app
    iid = cases.open_from(app, actor="dpo", scan=h.scan(), cfg=cfg)
    camp = notify.create_campaign(app, iid, "app", actor="dpo", cfg=cfg)
    t = MockTransport("app")
    notify.dispatch(app, camp.campaign_id, {"app": t}, actor="dpo", cfg=cfg)
    return [CODE.search(m.body).group(0) for m in t.sent.values()]


def test_codes_are_well_formed_distinct_and_never_stored(sqlite_hospital, cfg) -> None:
    codes = _sent_codes(sqlite_hospital, cfg)
    assert len(codes) == len(set(codes)) > 5
    assert all(c.count("-") == 2 and len(c) == 14 for c in codes)
    assert len(ALPHABET) == 32 and not set("01IO") & set(ALPHABET)  # 60 bits, unambiguous
    db = sqlite3.connect(sqlite_hospital.app.home.root / "phiguard.db")
    dump = "\n".join(db.iterdump())
    for c in codes:
        assert c not in dump and c.replace("-", "") not in dump


def test_genuine_unknown_and_malformed_codes(sqlite_hospital, cfg) -> None:
    app = sqlite_hospital.app
    code = _sent_codes(sqlite_hospital, cfg)[0]
    ok = verification.check(app, code.lower().replace("-", " "), client="203.0.113.9", cfg=cfg)
    assert ok.genuine and ok.as_dict(cfg)["genuine"] is True
    assert "P0000" not in ok.message(cfg) and "INC-" not in ok.message(cfg)  # one bit only
    bad = verification.check(app, "ZZZZ-ZZZZ-ZZZZ", client="203.0.113.9", cfg=cfg)
    junk = verification.check(app, "A123456(3)", client="203.0.113.9", cfg=cfg)  # an HKID
    assert bad.status == junk.status == "not_genuine"
    assert bad.message(cfg) == junk.message(cfg)  # identical: nothing learned from the shape


def test_rate_limited_per_client_then_window_resets(sqlite_hospital, cfg, clock) -> None:
    app = sqlite_hospital.app
    code = _sent_codes(sqlite_hospital, cfg)[0]
    small = cfg.model_copy(update={"verify_max_attempts": 3, "verify_window_minutes": 15})
    for _ in range(3):
        assert (
            verification.check(app, "ZZZZ-ZZZZ-ZZZZ", client="198.51.100.7", cfg=small).status
            == "not_genuine"
        )
    limited = verification.check(app, code, client="198.51.100.7", cfg=small)
    assert limited.status == "rate_limited" and not limited.genuine  # even a genuine code
    assert verification.check(app, code, client="198.51.100.8", cfg=small).genuine  # others fine
    clock.advance(timedelta(minutes=16))
    assert verification.check(app, code, client="198.51.100.7", cfg=small).genuine
    db = sqlite3.connect(app.home.root / "phiguard.db")
    assert "198.51.100.7" not in "\n".join(db.iterdump())  # only a keyed hash of the client


def test_global_failure_brake(sqlite_hospital, cfg) -> None:
    app = sqlite_hospital.app
    code = _sent_codes(sqlite_hospital, cfg)[0]
    brake = cfg.model_copy(update={"verify_global_failures_per_minute": 5})
    for i in range(5):
        verification.check(app, "ZZZZ-ZZZZ-ZZZ2", client=f"bot-{i}", cfg=brake)
    assert verification.check(app, code, client="someone-new", cfg=brake).status == "rate_limited"


def test_code_derivation_is_keyed_and_single_purpose(sqlite_hospital) -> None:
    book = CodeBook(sqlite_hospital.app)
    nonce = book.new_nonce()
    assert book.code(nonce) == book.code(nonce)  # letters can be re-printed
    assert book.hash(book.code(nonce)) != sqlite_hospital.app.blind.digest("hkid", book.code(nonce))
    assert verification.normalise("abcd efgh jkmn") == "ABCDEFGHJKMN"
    assert verification.normalise("ABCD-EFGH-IJKL") is None  # I is not in the alphabet
