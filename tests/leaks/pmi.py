"""A small synthetic PMI and labelled leak dumps built from it (for the leak-scanner tests).

The PMI is imported through the real importer, so the blind indexes are exactly the ones a
hospital's home would hold. Each dump knows which patients it holds (its labels).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from phiguard.identifiers import HospitalNumberFormat, hkid_check_char

SURNAMES = [
    ("CHAN", "陳"),
    ("WONG", "黃"),
    ("LEE", "李"),
    ("CHEUNG", "張"),
    ("LAU", "劉"),
    ("LAM", "林"),
    ("LEUNG", "梁"),
    ("NG", "吳"),
    ("HO", "何"),
    ("CHENG", "鄭"),
    ("YEUNG", "楊"),
    ("CHOW", "周"),
    ("TSANG", "曾"),
    ("KWOK", "郭"),
    ("TSE", "謝"),
    ("FUNG", "馮"),
    ("CHOI", "蔡"),
    ("TANG", "鄧"),
    ("YIP", "葉"),
    ("MAK", "麥"),
]
VARIANT = {
    "CHAN": "CHEN",
    "WONG": "WANG",
    "LEE": "LI",
    "CHEUNG": "ZHANG",
    "LAU": "LIU",
    "LAM": "LIN",
    "LEUNG": "LIANG",
    "NG": "WU",
    "HO": "HE",
    "CHENG": "ZHENG",
    "YEUNG": "YANG",
    "CHOW": "ZHOU",
    "TSANG": "ZENG",
    "KWOK": "GUO",
    "TSE": "XIE",
    "FUNG": "FENG",
    "CHOI": "CAI",
    "TANG": "DENG",
    "YIP": "YE",
    "MAK": "MAI",
}
SYLLABLES = [
    ("Tai", "大"),
    ("Man", "文"),
    ("Siu", "小"),
    ("Ming", "明"),
    ("Ka", "家"),
    ("Yan", "欣"),
    ("Wing", "詠"),
    ("Sze", "詩"),
    ("Chi", "志"),
    ("Keung", "強"),
    ("Mei", "美"),
    ("Ling", "玲"),
    ("Kwok", "國"),
    ("Wai", "偉"),
    ("Hoi", "凱"),
    ("Yee", "儀"),
    ("Chun", "俊"),
    ("Kit", "傑"),
    ("Pui", "佩"),
    ("Shan", "珊"),
    ("Hung", "雄"),
    ("Fai", "輝"),
    ("Lok", "樂"),
    ("Tung", "東"),
]
PREFIXES = "ACDEGHKMPRVYZ"


@dataclass
class Person:
    patient_id: str
    hkid: str  # display form A123456(3)
    hospital_no: str
    surname: str
    given: list[str]
    name_zh: str
    sex: str
    dob: str
    phone: str

    @property
    def name_en(self) -> str:
        return f"{self.surname} {' '.join(self.given)}"

    @property
    def hkid_canonical(self) -> str:
        return self.hkid.replace("(", "").replace(")", "")


def make_hkid(rng: random.Random, used: set[str]) -> str:
    while True:
        p = rng.choice(PREFIXES)
        d = f"{rng.randrange(10**6):06d}"
        h = f"{p}{d}({hkid_check_char(p, d)})"
        if h not in used:
            used.add(h)
            return h


def make_people(n: int, seed: int = 7, start: int = 0) -> list[Person]:
    rng = random.Random(seed)
    hn = HospitalNumberFormat()
    used: set[str] = set()
    people = []
    for i in range(start, start + n):
        sur, sur_zh = rng.choice(SURNAMES)
        g = rng.sample(SYLLABLES, 2)
        people.append(
            Person(
                patient_id=f"P{i:07d}",
                hkid=make_hkid(rng, used),
                hospital_no=hn.make(20_000_000 + i),
                surname=sur,
                given=[x[0] for x in g],
                name_zh=sur_zh + "".join(x[1] for x in g),
                sex=rng.choice("MF"),
                dob=f"{rng.randrange(1930, 2015)}-{rng.randrange(1, 13):02d}-"
                f"{rng.randrange(1, 29):02d}",
                phone=f"{rng.choice('569')}{rng.randrange(10**7):07d}",
            )
        )
    return people


def write_pmi(path: Path, people: list[Person]) -> Path:
    header = [
        "patient_id",
        "hkid",
        "hospital_no",
        "name_en",
        "name_zh",
        "sex",
        "dob",
        "cluster",
        "phone",
        "address",
        "app_registered",
        "vip",
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for p in people:
            w.writerow(
                [
                    p.patient_id,
                    p.hkid,
                    p.hospital_no,
                    p.name_en,
                    p.name_zh,
                    p.sex,
                    p.dob,
                    "KEC",
                    p.phone,
                    "",
                    "true",
                    "false",
                ]
            )
    return path


def import_pmi(app, tmp: Path, people: list[Person]) -> None:  # type: ignore[no-untyped-def]
    from phiguard.storage.importer import import_file

    report = import_file(app, "patients", write_pmi(tmp / "pmi.csv", people), strict=True)
    assert report.rows_bad == 0


def decoy_hkids(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    """Valid-checksum HKIDs that belong to nobody in the PMI."""
    used = set(taken)
    return [make_hkid(rng, used) for _ in range(n)]


def mask(hkid: str, rng: random.Random) -> str:
    """``A123456(3)`` -> ``A123***(3)`` and other common maskings."""
    style = rng.randrange(3)
    prefix = hkid[: len(hkid) - 9]
    digits, check = hkid[-9:-3], hkid[-2]
    if style == 0:
        return f"{prefix}{digits[:3]}***({check})"
    if style == 1:
        return f"{prefix}{digits[:4]}XX({check})"
    return f"{prefix}***{digits[3:]}(*)"
