"""A small hospital for the leak-scanner tests: a PMI, accounts, access events, and the five
labelled dumps of the issue (exact CSV, forum paste with decoys, XLSX with Chinese headers,
masked-HKID file, JSON from a slow exfiltration). Each dump carries its labels: the patients
it holds and the source it came from."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from phiguard.clock import HKT
from tests.leaks.pmi import VARIANT, Person, decoy_hkids, import_pmi, make_people, mask

PROCEDURES = [
    "Laparoscopic cholecystectomy",
    "Total knee replacement",
    "Appendicectomy",
    "Cataract extraction",
    "Inguinal hernia repair",
    "Hysterectomy",
]
PROCEDURES_ZH = ["腹腔鏡膽囊切除術", "全膝關節置換術", "闌尾切除術", "白內障摘除術", "疝氣修補術"]
EVENT_HEADER = [
    "event_id",
    "source",
    "seq",
    "ts",
    "account_id",
    "action",
    "patient_id",
    "fields",
    "query_id",
    "client_ip",
    "device_id",
    "purpose",
    "outcome",
]


@dataclass
class Dump:
    path: Path
    patients: set[str]
    source: str  # the query_id (or account_id) it came from
    decoys: int = 0


@dataclass
class World:
    tmp: Path
    people: list[Person]
    dumps: dict[str, Dump] = field(default_factory=dict)

    def by_id(self) -> dict[str, Person]:
        return {p.patient_id: p for p in self.people}


def _spell(hkid: str, rng: random.Random) -> str:
    """The same HKID the way people write it: A123456(3), A1234563, A123456 3, a123456(3)."""
    bare = hkid.replace("(", "").replace(")", "")
    return rng.choice([hkid, bare, f"{bare[:-1]} {bare[-1]}", hkid.lower()])


def _events(world: World, rng: random.Random) -> Path:
    rows: list[list[str]] = []
    seq = 0
    t0 = datetime(2026, 3, 27, 8, 0, tzinfo=HKT)

    def add(ts: datetime, account: str, action: str, pid: str, query: str = "") -> None:
        nonlocal seq
        seq += 1
        rows.append(
            [
                f"e{seq}",
                "CMS",
                str(seq),
                ts.isoformat(),
                account,
                action,
                pid,
                "name,sex,hkid,hospital_no,procedure",
                query,
                "10.0.0.1",
                "WS-1",
                "TREAT",
                "success",
            ]
        )

    ids = [p.patient_id for p in world.people]
    # clinicians reading patients in the course of care (some of them later leaked)
    for d in range(7):
        for doc in range(6):
            for pid in rng.sample(ids, 25):
                add(
                    t0 + timedelta(days=d, minutes=rng.randrange(600)), f"ha-doc-{doc}", "read", pid
                )
    for name, dump in world.dumps.items():
        if dump.source.startswith("q-"):  # one bulk export, a little wider than the dump
            extra = rng.sample([i for i in ids if i not in dump.patients], 40)
            account = "vx-eng-07" if name != "xlsx" else "ha-clerk-2"
            ts = t0 + timedelta(days=6, hours=17, minutes=12 + len(name))
            for pid in sorted(dump.patients) + extra:
                add(ts, account, "export", pid, dump.source)
    slow = world.dumps.get("json")
    if slow is not None:  # a slow exfiltration: many small searches over a week
        chunk = sorted(slow.patients)
        for i in range(0, len(chunk), 10):
            ts = t0 + timedelta(days=i % 7, hours=20, minutes=i % 50)
            for pid in chunk[i : i + 10]:
                add(ts, "vx-eng-09", "search", pid, f"s-{i // 10:03d}")
    # an unrelated, wide export by a clerk
    for pid in rng.sample(ids, 300):
        add(t0 + timedelta(days=2, hours=10), "ha-clerk-1", "export", pid, "q-10001")
    path = world.tmp / "events.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(EVENT_HEADER)
        w.writerows(rows)
    return path


def _reference(world: World) -> tuple[Path, Path]:
    vendors = world.tmp / "vendors.csv"
    vendors.write_text(
        "vendor_id,name,contract_id,contract_start,contract_end,dpa_signed,last_assessment\n"
        "V012,Maintenance Ltd,C-1,2025-01-01,2026-12-31,true,\n"
        "V020,Data Ltd,C-2,2025-01-01,2026-12-31,true,\n"
    )
    accounts = world.tmp / "accounts.csv"
    lines = [
        "account_id,person_name,employer,role,department,cluster,active_from,active_to,"
        "patient_id,home_address"
    ]
    lines += [f"ha-doc-{i},Doctor {i},HA,doctor,SURG,KEC,2020-01-01,,," for i in range(6)]
    lines += [
        "ha-clerk-1,Clerk One,HA,clerk,MED,KEC,2020-01-01,,,",
        "ha-clerk-2,Clerk Two,HA,clerk,MED,KEC,2020-01-01,,,",
        "vx-eng-07,Engineer Seven,V012,vendor_engineer,IT,ALL,2025-01-01,,,",
        "vx-eng-09,Engineer Nine,V020,vendor_engineer,IT,ALL,2025-01-01,,,",
    ]
    accounts.write_text("\n".join(lines) + "\n")
    return vendors, accounts


def build(app, tmp: Path, *, n: int = 1200, seed: int = 11) -> World:  # type: ignore[no-untyped-def]
    from phiguard.audit.ingest import ingest_file
    from phiguard.storage.importer import import_file

    rng = random.Random(seed)
    world = World(tmp, make_people(n, seed=seed))
    import_pmi(app, tmp, world.people)
    vendors, accounts = _reference(world)
    import_file(app, "vendors", vendors, strict=True)
    import_file(app, "accounts", accounts, strict=True)
    taken = {p.hkid for p in world.people}
    pool = list(world.people)
    rng.shuffle(pool)
    world.dumps["csv"] = exact_csv(tmp, pool[:300], rng, taken)
    world.dumps["text"] = forum_paste(tmp, pool[300:380], rng, taken)
    world.dumps["xlsx"] = chinese_xlsx(tmp, pool[380:480], rng, taken)
    world.dumps["masked"] = masked_csv(tmp, pool[480:630], rng)
    world.dumps["json"] = slow_json(tmp, pool[630:730], rng)
    ingest_file(app, _events(world, rng))
    return world


def exact_csv(tmp: Path, people: list[Person], rng: random.Random, taken: set[str]) -> Dump:
    path = tmp / "dump.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["Patient Name", "Sex", "HKID No.", "Hosp No", "Operation"])
        for p in people:
            w.writerow(
                [p.name_en, p.sex, _spell(p.hkid, rng), p.hospital_no, rng.choice(PROCEDURES)]
            )
        for h in decoy_hkids(rng, 6, taken):  # real-looking numbers of nobody in the PMI
            w.writerow(["CHAN Tai Man", "M", h, "", "Appendicectomy"])
        w.writerow(["LEE Siu Ming", "F", "A123456(9)", "", "Hysterectomy"])  # wrong check char
    return Dump(path, {p.patient_id for p in people}, "q-88812", decoys=6)


def forum_paste(tmp: Path, people: list[Person], rng: random.Random, taken: set[str]) -> Dump:
    lines = ["Hey all, look what I found on a hospital contractor's share lol", ""]
    for p in people:
        tpl = rng.choice(
            [
                "{name} ({hkid}) {sex}, had {proc}, file {hn}",
                "patient {name} HKID: {hkid} - {proc}",
                "{hn} | {name} | {sex} | {proc}",
            ]
        )
        lines.append(
            tpl.format(
                name=p.name_en
                if rng.random() < 0.5
                else f"{' '.join(p.given)} {p.surname.title()}",
                hkid=_spell(p.hkid, rng),
                sex="male" if p.sex == "M" else "female",
                proc=rng.choice(PROCEDURES),
                hn=p.hospital_no,
            )
        )
    decoys = decoy_hkids(rng, 5, taken)
    lines += [
        f"fake one for the lulz: WONG Ka Yan {decoys[0]}",
        f"example from the gov website: {decoys[1]} and {decoys[2]}",
        f"my own (not a patient!) {decoys[3]}; my mum's {decoys[4]}",
        "ordering pizza tonight, call 9123 4567",
    ]
    path = tmp / "paste.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Dump(path, {p.patient_id for p in people}, "q-66601", decoys=5)


def chinese_xlsx(tmp: Path, people: list[Person], rng: random.Random, taken: set[str]) -> Dump:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "病人名單"
    ws.append(["姓名", "性別", "身份證號碼", "檔案編號", "手術"])
    for p in people:
        ws.append(
            [
                p.name_zh,
                "男" if p.sex == "M" else "女",
                p.hkid,
                p.hospital_no,
                rng.choice(PROCEDURES_ZH),
            ]
        )
    for h in decoy_hkids(rng, 3, taken):
        ws.append(["陳大文", "男", h, "", "闌尾切除術"])
    path = tmp / "名單.xlsx"
    wb.save(path)
    return Dump(path, {p.patient_id for p in people}, "q-77001", decoys=3)


def masked_csv(tmp: Path, people: list[Person], rng: random.Random) -> Dump:
    path = tmp / "masked.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "gender", "id", "date of birth"])
        for p in people:
            sur = VARIANT[p.surname] if rng.random() < 0.3 else p.surname
            style = rng.randrange(4)
            if style == 0:
                name = f"{sur} {' '.join(p.given)}"
            elif style == 1:
                name = f"{sur.title()} {'-'.join(p.given).capitalize()}"
            elif style == 2:
                name = f"{' '.join(p.given)} {sur}"
            else:
                name = f"{sur} {''.join(p.given)}"
            y, m, d = p.dob.split("-")
            dob = rng.choice([p.dob, f"{d}/{m}/{y}"])
            w.writerow([name, p.sex, mask(p.hkid, rng), dob])
    return Dump(path, {p.patient_id for p in people}, "q-55501")


def slow_json(tmp: Path, people: list[Person], rng: random.Random) -> Dump:
    records = [
        {
            "patient": {"name": p.name_en, "hkid": _spell(p.hkid, rng), "sex": p.sex},
            "surgery": rng.choice(PROCEDURES),
        }
        for p in people
    ]
    doc = {"meta": {"source": "ward-system"}, "data": records}
    path = tmp / "exfil.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return Dump(path, {p.patient_id for p in people}, "vx-eng-09")


def f1(found: set[str], truth: set[str]) -> float:
    tp = len(found & truth)
    if not found or not truth:
        return 0.0
    precision, recall = tp / len(found), tp / len(truth)
    return 2 * precision * recall / (precision + recall) if tp else 0.0
