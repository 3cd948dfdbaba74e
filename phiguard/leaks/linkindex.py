"""The date-of-birth blind index used to fetch fuzzy-linkage candidates.

``refresh`` keys every patient that has no key yet, or whose row changed since (its
``row_mac`` differs), and drops keys of patients that are gone. The first run over a large PMI
decrypts every row once (in memory); later runs touch only new and changed rows. A scan calls
it before fuzzy linkage; ``phiguard leaks index`` runs it ahead of time.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Table, delete, func, insert, select

from phiguard.app import App
from phiguard.leaks.models import LeakLinkKey
from phiguard.storage.models import Patient

BATCH = 20_000
PII = b"patient:pii"


def dob_digest(app: App, dob: str) -> bytes:
    return app.blind.digest("dob", dob)


def refresh(app: App, progress: Callable[[int], None] | None = None, *, full: bool = True) -> int:
    """Bring the index up to date; returns how many patients were (re)keyed.

    ``full=False`` (what a scan does) only keys patients that have no key yet, and only when
    the counts differ — two cheap counts instead of a join over the whole PMI. A stale key
    (a patient whose date of birth changed since) cannot cause a wrong link: candidates are
    decrypted and compared on their real date, and a record that round 1 misses is retried
    by birth year. ``phiguard leaks index`` runs the full refresh.
    """
    p, k = Patient.__table__, LeakLinkKey.__table__
    assert isinstance(k, Table)
    if not full:
        with app.engine.connect() as c:
            n_p = c.execute(select(func.count()).select_from(p)).scalar_one()
            n_k = c.execute(select(func.count()).select_from(k)).scalar_one()
        if n_p == n_k:
            return 0
    changed = k.c.patient_id.is_(None)
    if full:
        changed = changed | (k.c.row_mac != p.c.row_mac)
    stale = (
        select(p.c.patient_id, p.c.pii, p.c.row_mac)
        .select_from(p.outerjoin(k, k.c.patient_id == p.c.patient_id))
        .where(changed)
    )
    done = 0
    with app.engine.connect() as read, app.engine.begin() as write:
        gone = select(k.c.patient_id).where(
            ~select(p.c.patient_id).where(p.c.patient_id == k.c.patient_id).exists()
        )
        write.execute(delete(k).where(k.c.patient_id.in_(gone.scalar_subquery())))
        rows = read.execution_options(stream_results=True, yield_per=BATCH).execute(stale)
        while True:
            chunk = rows.fetchmany(BATCH)
            if not chunk:
                break
            keys = []
            for pid, pii, mac in chunk:
                dob = app.cipher.decrypt_json(pii, PII).get("dob")
                keys.append(
                    {
                        "patient_id": pid,
                        "row_mac": mac,
                        "dob_bidx": dob_digest(app, dob) if dob else None,
                    }
                )
            write.execute(delete(k).where(k.c.patient_id.in_([x["patient_id"] for x in keys])))
            write.execute(insert(k), keys)
            done += len(keys)
            if progress is not None:
                progress(done)
    return done
