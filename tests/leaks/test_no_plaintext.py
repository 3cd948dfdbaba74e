"""A scan, the canary registry, the link index and the patient check leave no identifier in
any file of the home."""

from __future__ import annotations

import csv
import random

from phiguard.leaks import canaries
from phiguard.leaks.check import MemoryCodeSender, request_code
from phiguard.leaks.scan import scan
from tests.leaks.pmi import import_pmi, make_people, mask


def test_no_identifier_in_the_home_after_scans(sqlite_app, tmp_path):
    people = make_people(60)
    import_pmi(sqlite_app, tmp_path, people)
    rng = random.Random(3)
    dump = tmp_path / "dump.csv"
    with dump.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "sex", "hkid", "hn", "dob", "phone"])
        for p in people[:20]:
            w.writerow([p.name_en, p.sex, p.hkid, p.hospital_no, p.dob, p.phone])
        for p in people[20:30]:
            w.writerow([p.name_en, p.sex, mask(p.hkid, rng), "", p.dob, ""])
    paste = tmp_path / "paste.txt"
    paste.write_text("".join(f"{p.name_zh} {p.hkid} 闌尾切除術\n" for p in people[30:40]))
    result = scan(sqlite_app, [dump, paste], actor="t")
    assert result["affected_count"] == 40
    canaries.plant(sqlite_app, actor="dpo", vendor_id="V012")
    request_code(sqlite_app, people[0].hkid, sender=MemoryCodeSender())
    sqlite_app.close()
    needles: list[bytes] = []
    for p in people[:40]:
        needles += [
            p.hkid.encode(),
            p.hkid_canonical.encode(),
            p.hospital_no.encode(),
            p.phone.encode(),
            p.name_en.encode(),
            p.name_zh.encode(),
        ]
    files = [f for f in sqlite_app.home.root.rglob("*") if f.is_file()]
    for f in files:
        data = f.read_bytes()
        for needle in needles:
            assert needle not in data, (
                f"plaintext identifier in {f.relative_to(sqlite_app.home.root)}"
            )
