"""Regulator and post-incident reports, each as a JSON document and a PDF rendered from it.

=======  ===============================================================  ============
kind     what                                                             languages
=======  ===============================================================  ============
pcpd     PCPD data breach notification, in the four parts of its form:    English + 中文
         (a) data user and sector, (b) contact person, (c) the incident,
         (d) assessment and remedial actions
cap653   Cap. 653 computer-system security incident report                English + 中文
hkcert   HKCERT incident report (type, time, indicators, actions)         English
police   Police referral packet (facts, accounts, evidence, timeline)     English + 中文
final    Post-incident report (timeline, tasks, clocks, notices, lessons) English
=======  ===============================================================  ============

A report holds counts, field names, account and vendor ids — never a patient's name or
identifier. The police packet lists the affected patients by pseudonymous ``patient_id``
in its JSON only. The JSON is also kept in ``incident_reports`` with the PDF's SHA-256, so
what was sent can be shown later exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from phiguard.audit.tags import Tag
from phiguard.errors import UsageError
from phiguard.incidents import cases, clocks, playbook, risk
from phiguard.incidents.models import AffectedPatient, Enquiry, Notice, Report, VerificationAttempt
from phiguard.incidents.pdf import render_report
from phiguard.incidents.settings import IncidentSettings
from phiguard.incidents.wording import FIELD_NAMES, date_en, date_zh, field_words
from phiguard.storage.models import Vendor

if TYPE_CHECKING:
    from phiguard.app import App

KINDS = ("pcpd", "cap653", "hkcert", "police", "final")
TITLES = {
    "pcpd": (
        "Data Breach Notification to the Privacy Commissioner for Personal Data",
        "向個人資料私隱專員公署作出的資料外洩事故通報",
    ),
    "cap653": (
        "Computer-system Security Incident Report (Cap. 653)",
        "電腦系統安全事故報告（第653章）",
    ),
    "hkcert": ("Incident Report to HKCERT", ""),
    "police": ("Police Referral Packet", "轉介警方資料"),
    "final": ("Post-incident Report", "事故後報告"),
}
BILINGUAL = {"pcpd", "cap653", "police"}
OFFENCES = (
    "access to computer with criminal or dishonest intent (Crimes Ordinance, Cap. 200, "
    "s.161); disclosing personal data obtained without consent (PDPO, Cap. 486, s.64) / "
    "有犯罪或不誠實意圖而取用電腦（第200章第161條）；"
    "披露未經同意而取得的個人資料（第486章第64條）"
)
PSEUDONYMS = (
    "pseudonymous patient ids, listed in the JSON of this packet; identities are released on "
    "a formal request / 以化名編號列於本文件的 JSON 版本；身份資料須正式要求方會提供"
)
LESSONS = (
    "Time- and scope-limited contractor grants through the access service; no standing "
    "export rights",
    "Security terms, assessments and audits in every data-processing contract (DPP2(3), DPP4(2))",
    "Live monitoring of bulk queries and exports against each grant's row limit",
    "Privileged access management and MFA for administration and database accounts",
    "Training for staff and contractors on data handling and on phishing that uses leaked data",
)


def L(en: str, zh: str = "") -> dict[str, str]:
    return {"en": en, "zh": zh}


def item(label: dict[str, str], value: Any) -> dict[str, Any]:
    return {
        "label": label,
        "value": value
        if isinstance(value, str)
        else json.dumps(value, ensure_ascii=False)
        if isinstance(value, (dict, list))
        else str(value),
    }


def _facts(app: App, incident_id: str, cfg: IncidentSettings) -> dict[str, Any]:
    now = app.clock.now()
    with app.session() as s:
        inc = cases.get(s, incident_id)
        fields = cases.fields_exposed(s, incident_id)
        accts = cases.accounts(s, incident_id)
        vendor = s.get(Vendor, inc.vendor_id) if inc.vendor_id else None
        notices = s.execute(
            select(Notice.channel, Notice.state, func.count())
            .where(Notice.incident_id == incident_id)
            .group_by(Notice.channel, Notice.state)
        ).all()
        enquiries = (
            s.scalar(
                select(func.count()).select_from(Enquiry).where(Enquiry.incident_id == incident_id)
            )
            or 0
        )
        verified = (
            s.scalar(
                select(func.coalesce(func.sum(Notice.verified_count), 0)).where(
                    Notice.incident_id == incident_id
                )
            )
            or 0
        )
        failed_checks = (
            s.scalar(
                select(func.count())
                .select_from(VerificationAttempt)
                .where(VerificationAttempt.genuine.is_(False))
            )
            or 0
        )
        tasks = playbook.tasks(s, incident_id)
        return {
            "inc": inc,
            "fields": fields,
            "accounts": accts,
            "vendor": vendor,
            "affected": cases.affected_count(s, incident_id),
            "risk": risk.load(s, incident_id),
            "clocks": clocks.view(s, incident_id, now, cfg),
            "notices": notices,
            "enquiries": enquiries,
            "verified": int(verified),
            "failed_checks": failed_checks,
            "tasks": [(t.step, t.key, t.title, t.owner, t.due, t.status, t.done_at) for t in tasks],
            "patient_ids": [
                p
                for (p,) in s.execute(
                    select(AffectedPatient.patient_id)
                    .where(AffectedPatient.incident_id == incident_id)
                    .order_by(AffectedPatient.patient_id)
                )
            ],
            "now": now,
        }


def _notice_summary(rows: list[tuple[str, str, int]]) -> str:
    if not rows:
        return "no patient notices yet"
    by: dict[str, int] = {}
    for ch, st, n in rows:
        if st in ("sent", "delivered"):
            by[ch] = by.get(ch, 0) + n
    queued = sum(n for _, st, n in rows if st in ("queued", "sending"))
    sent = ", ".join(f"{ch} {n:,}" for ch, n in sorted(by.items())) or "none yet"
    return f"sent or delivered: {sent}; still queued: {queued:,}"


def build(
    app: App, incident_id: str, kind: str, cfg: IncidentSettings | None = None
) -> dict[str, Any]:
    """The report as data; :func:`render` turns it into a PDF."""
    if kind not in KINDS:
        raise UsageError(f"unknown report kind {kind!r}; use {'|'.join(KINDS)}")
    cfg = cfg or IncidentSettings()
    f = _facts(app, incident_id, cfg)
    inc, a = f["inc"], f["risk"]
    timeline = cases.timeline(app, incident_id)
    fen, fzh = field_words(f["fields"])
    vendor = f["vendor"]
    contractor = (
        f"Yes: {vendor.name} ({vendor.vendor_id}); data processing agreement "
        f"{'signed' if vendor.dpa_signed else 'NOT signed'}; last security assessment "
        f"{vendor.last_assessment or 'none on record'}"
        if vendor
        else f"Yes: vendor {inc.vendor_id}"
        if inc.vendor_id
        else "No contractor involved"
    )
    contained = [e["text"] for e in timeline if e["kind"] in ("contained", "evidence")]
    told = [c for c in f["clocks"] if c.notified_at is not None]
    occurred = min((e["ts"] for e in timeline if e["kind"] in ("alert", "audit_log")), default=None)
    risk_items = [
        item(L(f"ENISA {k}"), f"{v.value:g} — {v.rationale}") for k, v in a.factors.items()
    ]
    common_incident = [
        item(L("Incident reference", "事故編號"), inc.incident_id),
        item(L("Title", "標題"), inc.title),
        item(L("Became aware", "知悉時間"), clocks.hkt(inc.aware_at) + " HKT"),
        item(
            L("Occurred (first related access)", "發生時間（首次相關存取）"),
            occurred or "under investigation",
        ),
        item(
            L("How it was found", "發現途徑"),
            {
                "alert": "internal monitoring alert",
                "scan": "leak scan of data found on a third-party platform",
                "manual": "reported to the privacy office",
            }.get(inc.source.split("+")[0], inc.source)
            + (f" ({inc.source_ref})" if inc.source_ref else ""),
        ),
        item(
            L("Personal data involved", "涉及的個人資料"),
            f"{fen} / {fzh}" if f["fields"] else "under investigation",
        ),
        item(L("Number of data subjects", "涉及的資料當事人人數"), f"{f['affected']:,}"),
        item(
            L("Sensitive (health) data", "敏感（健康）資料"),
            "yes / 是" if set(f["fields"]) & risk.SENSITIVE else "no / 否",
        ),
        item(
            L("Data found published", "資料已被公開"),
            "yes / 是" if inc.publicly_posted else "not known / 未知",
        ),
    ]
    accounts = [
        item(
            L("Account involved", "涉及帳戶"),
            f"{x.account_id} (vendor {x.vendor_id or '—'}): {x.evidence or x.role}",
        )
        for x in f["accounts"]
        if not x.account_id.startswith("vendor:")
    ]
    actions = [item(L("Action", "措施"), t) for t in contained] or [
        item(L("Action", "措施"), "none recorded yet")
    ]
    sections: list[dict[str, Any]] = []
    data: dict[str, Any] = {
        "incident_id": inc.incident_id,
        "affected_count": f["affected"],
        "fields_exposed": f["fields"],
        "enisa": a.as_dict(),
        "clocks": {c.recipient: c.as_dict() for c in f["clocks"]},
    }
    if kind == "pcpd":
        sections = [
            {
                "heading": L("Part (a) — The data user", "(a) 部 — 資料使用者"),
                "items": [
                    item(
                        L("Name of data user", "資料使用者名稱"),
                        f"{cfg.hospital_name} / {cfg.hospital_name_zh}",
                    ),
                    item(L("Sector", "界別"), cfg.sector),
                ],
            },
            {
                "heading": L("Part (b) — Contact person", "(b) 部 — 聯絡人"),
                "items": [
                    item(L("Name / post", "姓名／職位"), cfg.contact_name),
                    item(L("Telephone", "電話"), cfg.contact_phone),
                    item(L("E-mail", "電郵"), cfg.contact_email),
                ],
            },
            {
                "heading": L("Part (c) — The incident", "(c) 部 — 事故詳情"),
                "items": [
                    *common_incident,
                    item(
                        L(
                            "Handled by a contractor / service provider?",
                            "資料是否由承辦商／服務提供者處理？",
                        ),
                        contractor,
                    ),
                    *accounts,
                ],
            },
            {
                "heading": L(
                    "Part (d) — Assessment and remedial actions", "(d) 部 — 評估及補救措施"
                ),
                "items": [
                    item(
                        L("Cause", "成因"),
                        inc.cause
                        or "unauthorised access and disclosure through an account with "
                        "legitimate access; under investigation",
                    ),
                    item(
                        L("Risk of harm (ENISA severity)", "損害風險（ENISA 嚴重程度）"),
                        f"SE = {a.dpc:g} × {a.ei:g} + {a.cb:g} = {a.score:g} ({a.band})",
                    ),
                    *risk_items,
                    *actions,
                    item(
                        L("Data subjects notified?", "是否已通知資料當事人？"),
                        _notice_summary(f["notices"]),
                    ),
                    item(
                        L("Others notified", "已通知的其他機構"),
                        ", ".join(
                            f"{c.label} ({clocks.hkt(c.notified_at)})"
                            for c in told
                            if c.notified_at
                        )
                        or "none yet",
                    ),
                ],
            },
        ]
    elif kind == "cap653":
        c653 = next((c for c in f["clocks"] if c.recipient == "cap653"), None)
        sections = [
            {
                "heading": L("Operator", "營運者"),
                "items": [
                    item(L("Operator", "營運者"), f"{cfg.hospital_name} / {cfg.hospital_name_zh}"),
                    item(L("Sector", "界別"), cfg.sector),
                    item(
                        L("Designated operator", "指定營運者"),
                        "yes / 是"
                        if cfg.cap653_designated
                        else "no (report made voluntarily) / 否（自願報告）",
                    ),
                    item(
                        L("Contact", "聯絡人"),
                        f"{cfg.contact_name}, {cfg.contact_phone}, {cfg.contact_email}",
                    ),
                ],
            },
            {
                "heading": L("Incident", "事故"),
                "items": [
                    *common_incident,
                    item(
                        L("Category", "類別"),
                        "serious incident (core function disrupted) / 嚴重事故"
                        if inc.serious
                        else "other incident: unauthorised access to and disclosure of data; "
                        "core functions not disrupted / "
                        "其他事故：未經授權存取及披露資料，核心功能未受干擾",
                    ),
                    item(
                        L("Cyber attack", "網絡攻擊"),
                        "yes / 是"
                        if inc.cyber_attack
                        else "no: misuse of legitimate "
                        "contractor access / 否：承辦商濫用合法存取權限",
                    ),
                    item(
                        L("Reporting deadline", "報告限期"),
                        (
                            f"{c653.as_dict()['due']} ({c653.basis})"
                            if c653 and c653.due
                            else "not applicable (operator not designated)"
                        ),
                    ),
                    *accounts,
                ],
            },
            {
                "heading": L("Response", "應對"),
                "items": [*actions, item(L("Contractor", "承辦商"), contractor)],
            },
        ]
    elif kind == "hkcert":
        sections = [
            {
                "heading": L("Reporting organisation"),
                "items": [
                    item(L("Organisation"), cfg.hospital_name),
                    item(L("Sector"), cfg.sector),
                    item(
                        L("Contact"),
                        f"{cfg.contact_name}, {cfg.contact_phone}, {cfg.contact_email}",
                    ),
                ],
            },
            {
                "heading": L("Incident"),
                "items": [
                    *common_incident,
                    item(L("Incident type"), "data leakage through insider/contractor access"),
                    item(L("Severity (ENISA)"), f"{a.score:g} ({a.band})"),
                ],
            },
            {
                "heading": L("Indicators"),
                "items": [
                    *accounts,
                    *[
                        item(L("Access record"), e["text"])
                        for e in timeline
                        if e["kind"] == "audit_log"
                    ][:20],
                ],
            },
            {"heading": L("Actions taken"), "items": actions},
        ]
    elif kind == "police":
        sections = [
            {
                "heading": L("Complainant", "報案機構"),
                "items": [
                    item(
                        L("Organisation", "機構"), f"{cfg.hospital_name} / {cfg.hospital_name_zh}"
                    ),
                    item(
                        L("Contact", "聯絡人"),
                        f"{cfg.contact_name}, {cfg.contact_phone}, {cfg.contact_email}",
                    ),
                ],
            },
            {
                "heading": L("Facts", "事實"),
                "items": [
                    *common_incident,
                    *accounts,
                    item(L("Contractor", "承辦商"), contractor),
                    item(
                        L("Offences for police assessment", "供警方評估的罪行"),
                        OFFENCES,
                    ),
                ],
            },
            {
                "heading": L("Evidence", "證據"),
                "items": [
                    *[
                        item(L("Preserved", "已保存"), e["text"])
                        for e in timeline
                        if e["kind"] == "evidence"
                    ],
                    item(
                        L("Affected patients", "受影響病人"),
                        f"{f['affected']:,} {PSEUDONYMS}",
                    ),
                    *[
                        item(L("Access record", "存取紀錄"), e["text"])
                        for e in timeline
                        if e["kind"] == "audit_log"
                    ][:20],
                ],
            },
        ]
        data["affected_patient_ids"] = f["patient_ids"]
    else:  # final
        sections = [
            {
                "heading": L("Summary"),
                "items": [
                    *common_incident,
                    item(L("Status"), inc.status),
                    item(L("Severity (ENISA)"), f"{a.score:g} ({a.band})"),
                    *risk_items,
                ],
            },
            {
                "heading": L("Regulators and others"),
                "items": [
                    item(
                        L(c.label),
                        f"{c.state}; due {c.as_dict()['due'] or '—'}; notified "
                        f"{c.as_dict()['notified_at'] or '—'} {c.reference}".strip(),
                    )
                    for c in f["clocks"]
                ],
            },
            {
                "heading": L("Patients"),
                "items": [
                    item(L("Notices"), _notice_summary(f["notices"])),
                    item(L("Hotline enquiries logged"), f"{f['enquiries']:,}"),
                    item(L("Verification codes confirmed genuine"), f"{f['verified']:,}"),
                    item(
                        L("Failed verification checks (possible phishing)"),
                        f"{f['failed_checks']:,}",
                    ),
                ],
            },
            {
                "heading": L("Playbook tasks"),
                "items": [
                    item(
                        L(f"{step}: {key}"),
                        f"{status} (owner {owner}, due {clocks.hkt(due)}"
                        + (f", done {clocks.hkt(done)})" if done else ")"),
                    )
                    for step, key, _, owner, due, status, done in f["tasks"]
                ],
            },
            {
                "heading": L("Timeline"),
                "items": [item(L(e["ts"]), f"[{e['kind']}] {e['text']}") for e in timeline],
            },
            {
                "heading": L("Remediation and lessons"),
                "items": [item(L("Recommendation"), r) for r in LESSONS],
            },
        ]
    return {
        "kind": kind,
        "title": L(*TITLES[kind]),
        "bilingual": kind in BILINGUAL,
        "hospital": L(cfg.hospital_name, cfg.hospital_name_zh),
        "incident_id": inc.incident_id,
        "generated_at": clocks.hkt(f["now"]),
        "generated_date": L(date_en(f["now"]), date_zh(f["now"])),
        "sections": sections,
        "data": data,
        "field_names": {k: FIELD_NAMES.get(k, (k, k)) for k in f["fields"]},
    }


def write(
    app: App,
    incident_id: str,
    kind: str,
    out: Path,
    *,
    actor: str,
    cfg: IncidentSettings | None = None,
) -> dict[str, Any]:
    """Write ``out`` (PDF) and ``out`` with ``.json`` (the same report as data)."""
    cfg = cfg or IncidentSettings()
    out = Path(out)
    if out.suffix.lower() != ".pdf":
        raise UsageError(f"{out}: the report file must end in .pdf")
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent} is not a folder")
    doc = build(app, incident_id, kind, cfg)
    pdf = render_report(doc, out, cfg.cjk_font, cfg.cjk_subfont)
    digest = hashlib.sha256(pdf).hexdigest()
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    stored = {k: v for k, v in doc.items() if k != "data"} | {
        "data": {k: v for k, v in doc["data"].items() if k != "affected_patient_ids"}
    }
    now = app.clock.now()
    with app.session() as s:
        s.add(
            Report(
                incident_id=incident_id,
                kind=kind,
                written_at=now,
                written_by=actor,
                file_name=out.name,
                pdf_sha256=digest,
                content=json.dumps(stored, ensure_ascii=False),
            )
        )
        cases.log(
            s,
            incident_id,
            now,
            "report",
            f"{kind} report written by {actor} ({out.name}, sha256 {digest[:16]}…)",
            actor,
        )
        if kind == "final":
            playbook.auto_complete(s, incident_id, "document.final", at=now, by=actor)
    app.record(
        Tag.INCIDENT_REPORTED,
        actor=actor,
        subject=incident_id,
        kind=kind,
        pdf_sha256=digest,
        file=out.name,
    )
    return {
        "incident_id": incident_id,
        "kind": kind,
        "pdf": str(out),
        "json": str(json_path),
        "sha256": digest,
        "pages": pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages"),
    }
