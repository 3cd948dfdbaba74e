"""Breach-response benchmarks, each beside its anchor in the same run.

1. Personalised bilingual letters in ONE print-ready PDF (target: 56,000 in ≤ 60 s on this
   2-core machine). Ours: ``letters.write_letters`` end to end — reading the queued notices,
   decrypting each patient's name and address, deriving the verification code, drawing the
   letter (shared body as form XObjects) and writing the mail-house CSV and the database.
   Anchor: a plain per-letter ReportLab loop — the same letter laid out with platypus
   Paragraphs, one PDF per letter, which is how a letter is usually produced.
2. 56,000 push/SMS notices queued (target ≤ 10 s): ``notify.create_campaign`` (channel choice,
   verification code derivation and keyed hash, bulk insert), and then, for information,
   dispatch through an in-memory mock gateway (rendering each message, decrypting phone
   numbers, recording every attempt).

Run: ``.venv/bin/python -m bench.bench_incidents`` (letters at a reduced count, extrapolated;
56,000 queued) or ``BENCH_SCALE=full`` for 56,000 letters. ``--letters N --anchor N
--queue N`` override the counts.
"""

from __future__ import annotations

import argparse
import csv
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, update  # noqa: E402

from bench.common import FULL  # noqa: E402
from phiguard.app import App  # noqa: E402
from phiguard.identifiers import HospitalNumberFormat, hkid_check_char  # noqa: E402
from phiguard.incidents import cases, letters, notify, wording  # noqa: E402
from phiguard.incidents.models import Delivery, Notice  # noqa: E402
from phiguard.incidents.settings import IncidentSettings  # noqa: E402
from phiguard.incidents.transports import MockTransport  # noqa: E402
from phiguard.settings import Settings  # noqa: E402
from phiguard.storage.importer import import_file  # noqa: E402

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
]
GIVEN = [
    ("Tai Man", "大文"),
    ("Siu Ming", "小明"),
    ("Ka Yan", "家欣"),
    ("Wing Sze", "詠詩"),
    ("Chi Keung", "志強"),
    ("Mei Ling", "美玲"),
    ("Kwok Wai", "國偉"),
    ("Hoi Yee", "凱儀"),
]
ESTATES = [
    "Sau Mau Ping Estate",
    "Lam Tin Estate",
    "Tseung Kwan O Plaza",
    "Kwun Tong Garden",
    "Yau Tong Centre",
    "Choi Hung Estate",
]
FIELDS = ["name", "sex", "hkid", "hospital_no", "procedure"]


def write_pmi(path: Path, n: int) -> list[str]:
    hn = HospitalNumberFormat()
    ids = []
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
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
        )
        for i in range(n):
            s_en, s_zh = SURNAMES[i % len(SURNAMES)]
            g_en, g_zh = GIVEN[(i // 10) % len(GIVEN)]
            digits = f"{(100003 + i * 7) % 1000000:06d}"
            prefix = "ACDEGHKMPRVYZ"[i % 13]
            pid = f"P{i:07d}"
            ids.append(pid)
            w.writerow(
                [
                    pid,
                    f"{prefix}{digits}({hkid_check_char(prefix, digits)})",
                    hn.make(20_000_000 + i),
                    f"{s_en} {g_en}",
                    f"{s_zh}{g_zh}",
                    "MF"[i % 2],
                    f"19{40 + i % 60:02d}-0{1 + i % 9}-1{i % 9}",
                    "KEC",
                    f"9{i:07d}" if i % 7 else "",
                    f"Flat {i % 40 + 1}A, Block {i % 9 + 1}, {ESTATES[i % len(ESTATES)]}, Kowloon",
                    "true" if i % 3 else "false",
                    "false",
                ]
            )
    return ids


def open_incident(app: App, ids: list[str], cfg: IncidentSettings) -> str:
    scan = {
        "fields_exposed": FIELDS,
        "affected_patients": [{"patient_id": p} for p in ids],
        "attribution": [{"account_id": "vx-eng-07", "vendor_id": "V012", "evidence": "bench"}],
    }
    return cases.open_from(app, actor="bench", scan_doc=scan, cfg=cfg)


def reset_letters(app: App, iid: str) -> None:
    with app.session() as s:
        s.execute(delete(Delivery).where(Delivery.channel == "post"))
        s.execute(
            update(Notice)
            .where(Notice.incident_id == iid, Notice.channel == "post")
            .values(state="queued")
        )


def anchor_letters(app: App, iid: str, count: int, cfg: IncidentSettings, out: Path) -> float:
    """The same letters, laid out one at a time with platypus, one PDF each."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    from phiguard.incidents.pdf import markup, register_cjk

    register_cjk(cfg.cjk_font, cfg.cjk_subfont)
    with app.session() as s:
        inc = cases.get(s, iid)
        ctx = wording.incident_context(s, inc, FIELDS, cfg, app.clock.now())
        rows = s.execute(
            __import__("sqlalchemy")
            .select(__import__("phiguard.storage.models", fromlist=["Patient"]).Patient.pii)
            .limit(count)
        ).all()
    renderer = wording.Renderer(wording.load_templates(cfg), ctx, ["post"])
    static = renderer.letter_static()
    body = ParagraphStyle("b", fontName="Helvetica", fontSize=9, leading=11.5, wordWrap="CJK")
    out.mkdir(exist_ok=True)
    t = time.perf_counter()
    for i, (token,) in enumerate(rows):
        pii = app.cipher.decrypt_json(token, b"patient:pii")
        sal_en, sal_zh = renderer.salutation(pii["name_en"], pii.get("name_zh") or "")
        story = [
            Paragraph(markup(x), body)
            for x in (
                ctx["hospital"],
                ctx["hospital_zh"],
                ctx["letter_date"],
                pii["name_en"],
                pii.get("name_zh") or "",
                pii.get("address") or "",
            )
        ]
        story += [
            Spacer(1, 20),
            Paragraph(markup(static["subject_en"]), body),
            Paragraph(markup(static["subject_zh"]), body),
            Paragraph(markup(sal_en), body),
        ]
        story += [Paragraph(markup(p), body) for p in static["paragraphs_en"]]
        story += [Paragraph(markup(sal_zh), body)]
        story += [Paragraph(markup(p), body) for p in static["paragraphs_zh"]]
        story += [
            Paragraph("Verification code: 2345-6789-ABCD", body),
            Paragraph(markup("核實碼：2345-6789-ABCD"), body),
        ]
        SimpleDocTemplate(str(out / f"letter-{i:06d}.pdf"), pagesize=A4).build(story)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--letters", type=int, default=56_000 if FULL else 8_000)
    ap.add_argument("--anchor", type=int, default=2_000 if FULL else 400)
    ap.add_argument("--queue", type=int, default=56_000)
    ap.add_argument("--repeat", type=int, default=3 if FULL else 2)
    args = ap.parse_args()
    target = 56_000
    cfg = IncidentSettings(cap653_designated=True)
    root = Path(tempfile.mkdtemp(prefix="phiguard-bench-incidents-"))
    try:
        app = App.init(Settings(home=root / "home"))
        n = max(args.letters, args.queue)
        t = time.perf_counter()
        ids = write_pmi(root / "pmi.csv", n)
        import_file(app, "patients", root / "pmi.csv", actor="bench")
        import os

        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"machine: {os.cpu_count()} cores, load average {load}", flush=True)
        print(f"setup: {n:,} patients imported in {time.perf_counter() - t:.1f} s", flush=True)

        # 1. letters ------------------------------------------------------------------
        iid = open_incident(app, ids[: args.letters], cfg)
        times, cpus = [], []
        for r in range(args.repeat):
            if r:
                reset_letters(app, iid)
            t, c = time.perf_counter(), time.process_time()
            res = letters.write_letters(app, iid, root / "letters.pdf", actor="bench", cfg=cfg)
            times.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        ours, ours_cpu = statistics.median(times), statistics.median(cpus)
        size = res.pdf.stat().st_size / 2**20
        rate, cpu_rate = res.letters / ours, res.letters / ours_cpu
        print(
            f"letters (phiguard, one merged PDF): {res.letters:,} letters, median of {len(times)}: "
            f"{ours:.1f} s wall ({', '.join(f'{x:.1f}' for x in times)}), {ours_cpu:.1f} s CPU; "
            f"{rate:,.0f}/s wall, {cpu_rate:,.0f}/s per CPU second; {size:.1f} MiB; "
            f"56,000 extrapolated: {target / rate:.1f} s wall here, {target / cpu_rate:.1f} s "
            f"on one free core",
            flush=True,
        )
        c = time.process_time()
        anchor_t = anchor_letters(app, iid, args.anchor, cfg, root / "anchor")
        anchor_cpu = time.process_time() - c
        arate, acpu_rate = args.anchor / anchor_t, args.anchor / anchor_cpu
        print(
            f"letters (anchor: per-letter ReportLab platypus loop, one PDF each): "
            f"{args.anchor:,} letters in {anchor_t:.1f} s wall, {anchor_cpu:.1f} s CPU; "
            f"{arate:,.1f}/s wall, {acpu_rate:,.1f}/s per CPU second; 56,000 extrapolated: "
            f"{target / arate:,.0f} s wall here, {target / acpu_rate:,.0f} s on one free core",
            flush=True,
        )
        print(
            f"letters ratio: phiguard {rate / arate:.0f}× the anchor's throughput (wall), "
            f"{cpu_rate / acpu_rate:.0f}× (CPU)",
            flush=True,
        )

        # 2. queueing 56,000 app/SMS notices --------------------------------------------
        qid = open_incident(app, ids[: args.queue], cfg)
        t, c = time.perf_counter(), time.process_time()
        camp = notify.create_campaign(app, qid, "app,sms", actor="bench", cfg=cfg)
        queued_s, queued_cpu = time.perf_counter() - t, time.process_time() - c
        total = sum(camp.queued.values())
        print(
            f"queue: {total:,} app/SMS notices queued in {queued_s:.2f} s wall, {queued_cpu:.2f} s "
            f"CPU ({total / queued_s:,.0f}/s wall; {camp.queued}); target 56,000 in ≤ 10 s",
            flush=True,
        )
        tr = {"app": MockTransport("app"), "sms": MockTransport("sms")}
        t, c = time.perf_counter(), time.process_time()
        d = notify.dispatch(app, camp.campaign_id, tr, actor="bench", cfg=cfg)
        sent_s, sent_cpu = time.perf_counter() - t, time.process_time() - c
        sent = sum(d.sent.values())
        print(
            f"dispatch (mock gateways, every attempt recorded): {sent:,} sent in {sent_s:.1f} s "
            f"wall, {sent_cpu:.1f} s CPU ({sent / sent_s:,.0f}/s wall)",
            flush=True,
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process: {peak:,.0f} MiB", flush=True)
        app.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
