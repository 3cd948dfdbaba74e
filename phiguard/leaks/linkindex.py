"""The surname + date-of-birth blind index used to fetch fuzzy-linkage candidates.

Each patient gets one keyed digest of its surname (as the PMI's surname index spells it) and
date of birth, stored in ``leak_link_keys.dob_bidx``. A masked record asks for the digests of
every spelling of its surname group with its date of birth, and the index returns exactly the
patients that share both — about ten per record at 7.5 M patients — without a look at anyone
else. (A date-only key joined with the surname index made SQLite walk ~230 patients per date
and check each one's surname: ten million page reads for 3,000 records at 7.5 M.)

``refresh`` keys every patient that has no key yet, or whose row changed since (its
``row_mac`` differs), and drops keys of patients that are gone. The first run over a large PMI
decrypts every row once (in memory); later runs touch only new and changed rows. Keys made in
another format or under another index key are found by re-deriving one stored key, and then
all are rebuilt. A scan calls it before fuzzy linkage; ``phiguard leaks index`` runs it ahead
of time.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Table, delete, func, insert, select

from phiguard.app import App
from phiguard.leaks.models import LeakLinkKey
from phiguard.storage.models import Patient
from phiguard.storage.normalise import surname

BATCH = 20_000
PII = b"patient:pii"


def link_digest(app: App, surname: str, dob: str) -> bytes:
    return app.blind.digest("surname+dob", f"{surname}\x00{dob}")


def _key_of(app: App, pii: bytes) -> bytes | None:
    d = app.cipher.decrypt_json(pii, PII)
    name, dob = surname(d.get("name_en")), d.get("dob")
    return link_digest(app, name, dob) if name and dob else None


def _stale(app: App) -> bool:
    """Whether the stored keys were made differently (an older format, another index key):
    one stored key is derived again and compared."""
    p, k = Patient.__table__, LeakLinkKey.__table__
    probe = (
        select(p.c.pii, k.c.dob_bidx)
        .select_from(k.join(p, k.c.patient_id == p.c.patient_id))
        .where(k.c.row_mac == p.c.row_mac, k.c.dob_bidx.is_not(None))
        .limit(1)
    )
    with app.engine.connect() as c:
        row = c.execute(probe).first()
    return row is not None and _key_of(app, row[0]) != (bytes(row[1]) if row[1] else None)


def refresh(app: App, progress: Callable[[int], None] | None = None, *, full: bool = True) -> int:
    """Bring the index up to date; returns how many patients were (re)keyed.

    ``full=False`` (what a scan does) only keys patients that have no key yet, and only when
    the counts differ — two cheap counts instead of a join over the whole PMI — unless one
    stored key, derived again, differs (keys of an older format): then all are rebuilt. A
    stale key
    (a patient whose date of birth changed since) cannot cause a wrong link: candidates are
    decrypted and compared on their real date, and a record that round 1 misses is retried
    by birth year. ``phiguard leaks index`` runs the full refresh.
    """
    p, k = Patient.__table__, LeakLinkKey.__table__
    assert isinstance(k, Table)
    rebuild = _stale(app)
    if not full and not rebuild:
        with app.engine.connect() as c:
            n_p = c.execute(select(func.count()).select_from(p)).scalar_one()
            n_k = c.execute(select(func.count()).select_from(k)).scalar_one()
        if n_p == n_k:
            return 0
    changed = k.c.patient_id.is_(None)
    if full:
        changed = changed | (k.c.row_mac != p.c.row_mac)
    stale = select(p.c.patient_id, p.c.pii, p.c.row_mac)
    if not rebuild:  # a rebuild keys everyone (the delete below is not visible to `read`)
        stale = stale.select_from(p.outerjoin(k, k.c.patient_id == p.c.patient_id)).where(changed)
    done = 0
    with app.engine.connect() as read, app.engine.begin() as write:
        gone = select(k.c.patient_id).where(
            ~select(p.c.patient_id).where(p.c.patient_id == k.c.patient_id).exists()
        )
        if rebuild:
            write.execute(delete(k))
        else:
            write.execute(delete(k).where(k.c.patient_id.in_(gone.scalar_subquery())))
        rows = read.execution_options(stream_results=True, yield_per=BATCH).execute(stale)
        while True:
            chunk = rows.fetchmany(BATCH)
            if not chunk:
                break
            keys = []
            for pid, pii, mac in chunk:
                keys.append({"patient_id": pid, "row_mac": mac, "dob_bidx": _key_of(app, pii)})
            write.execute(delete(k).where(k.c.patient_id.in_([x["patient_id"] for x in keys])))
            write.execute(insert(k), keys)
            done += len(keys)
            if progress is not None:
                progress(done)
    return done
