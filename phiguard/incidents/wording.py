"""The words of a notice: bilingual templates (``templates/notices.json``) and the variables
they may use, checked before a single notice is queued.

A template names variables as ``{hotline}``. The incident-wide ones come from
:func:`incident_context`; the per-recipient ones (``code``, ``ref``, ``name_en``,
``name_zh``) are filled at send time in memory and never stored. A template that uses a
variable phiguard does not provide, or a setting left empty (no hotline), is refused with
one line naming it.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phiguard.clock import HKT
from phiguard.errors import InputError, UsageError
from phiguard.incidents.models import Incident, RegulatorClock, TimelineEntry
from phiguard.incidents.playbook import SHIPPED
from phiguard.incidents.risk import FINANCIAL
from phiguard.incidents.settings import IncidentSettings

FIELD_NAMES: dict[str, tuple[str, str]] = {
    "name": ("name", "姓名"),
    "name_en": ("English name", "英文姓名"),
    "name_zh": ("Chinese name", "中文姓名"),
    "sex": ("sex", "性別"),
    "hkid": ("HKID number", "身份證號碼"),
    "hospital_no": ("hospital file number", "醫院檔案編號"),
    "procedure": ("surgical procedure", "手術名稱"),
    "dob": ("date of birth", "出生日期"),
    "phone": ("phone number", "電話號碼"),
    "address": ("address", "地址"),
    "diagnosis": ("diagnosis", "診斷"),
    "medication": ("medication", "藥物"),
    "department": ("department", "部門"),
    "email": ("e-mail address", "電郵地址"),
}
RECIPIENT_VARS = ("code", "ref", "name_en", "name_zh")
CHANNELS = ("app", "sms", "post", "phone")
_TEMPLATE_KEY = {"app": "app", "sms": "sms", "post": "letter", "phone": "phone"}
SETTING_OF = {
    "hotline": "HOTLINE",
    "hospital": "HOSPITAL_NAME",
    "hospital_zh": "HOSPITAL_NAME_ZH",
    "verify_url": "VERIFY_URL",
    "sender_id": "SMS_SENDER_ID",
}


def load_templates(cfg: IncidentSettings) -> dict[str, Any]:
    path = SHIPPED / "notices.json"
    if cfg.templates_dir and (cfg.templates_dir / "notices.json").is_file():
        path = cfg.templates_dir / "notices.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"notice templates {path}: not readable JSON ({exc})") from None
    missing = [k for k in _TEMPLATE_KEY.values() if not isinstance(doc.get(k), dict)]
    if missing:
        raise InputError(f"notice templates {path}: no section {missing[0]!r}")
    return dict(doc)


def join_en(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def join_zh(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "、".join(items[:-1]) + "及" + items[-1]


def field_words(fields: Iterable[str]) -> tuple[str, str]:
    order = list(FIELD_NAMES)
    known = sorted((f for f in set(fields) if f in FIELD_NAMES), key=order.index)
    names = [FIELD_NAMES[f] for f in known]
    names += [(f.replace("_", " "), f) for f in sorted(set(fields) - set(FIELD_NAMES))]
    return join_en([n[0] for n in names]), "、".join(n[1] for n in names)


def date_en(ts: datetime) -> str:
    d = ts.astimezone(HKT)
    return f"{d.day} {d:%B %Y}"


def date_zh(ts: datetime) -> str:
    d = ts.astimezone(HKT)
    return f"{d.year}年{d.month}月{d.day}日"


def incident_context(
    s: Session, inc: Incident, fields: list[str], cfg: IncidentSettings, now: datetime
) -> dict[str, str]:
    fen, fzh = field_words(fields)
    contained = (
        inc.contained_at is not None
        or s.scalars(
            select(TimelineEntry.id).where(
                TimelineEntry.incident_id == inc.incident_id, TimelineEntry.kind == "contained"
            )
        ).first()
        is not None
    )
    told = {
        r.recipient
        for r in s.scalars(
            select(RegulatorClock).where(
                RegulatorClock.incident_id == inc.incident_id,
                RegulatorClock.notified_at.is_not(None),
            )
        )
    }
    acts_en, acts_zh = [], []
    if contained:
        who_en = "the contractor's access" if inc.vendor_id else "the access involved"
        acts_en.append(f"We stopped {who_en} at once.")
        acts_zh.append(
            "本院已即時暫停" + ("承辦商" if inc.vendor_id else "相關人士") + "的存取權限。"
        )
    acts_en.append(
        "We are working to have the published data removed and are reviewing how our "
        "contractors and staff reach patient data."
    )
    acts_zh.append("本院正要求移除已被上載的資料，並檢討承辦商及職員存取病人資料的安排。")
    order = ("police", "pcpd", "hkcert", "cap653")
    names_en = {
        "police": "the Police",
        "pcpd": "the Privacy Commissioner for Personal Data",
        "hkcert": "HKCERT",
        "cap653": "the Commissioner of Critical Infrastructure",
    }
    names_zh = {
        "police": "警方",
        "pcpd": "個人資料私隱專員公署",
        "hkcert": "香港電腦保安事故協調中心",
        "cap653": "關鍵基礎設施專員",
    }
    done = [r for r in order if r in told]
    if done:
        told_en = f"We have told {join_en([names_en[r] for r in done])}."
        told_zh = f"本院已通知{join_zh([names_zh[r] for r in done])}。"
    else:
        told_en = (
            "We are reporting the incident to the Police and the Privacy Commissioner "
            "for Personal Data."
        )
        told_zh = "本院正向警方及個人資料私隱專員公署報告事件。"
    if inc.vendor_id and inc.publicly_posted:
        wh_en = (
            "personal data of patients had been accessed without authorisation through a "
            "contractor engaged by us, and posted on a third-party platform."
        )
        wh_zh = "部分病人的個人資料經本院聘用的承辦商在未經授權下被取覽，並被上載至第三方平台。"
    elif inc.vendor_id:
        wh_en = (
            "personal data of patients had been accessed without authorisation through a "
            "contractor engaged by us."
        )
        wh_zh = "部分病人的個人資料經本院聘用的承辦商在未經授權下被取覽。"
    elif inc.publicly_posted:
        wh_en = (
            "personal data of patients had been posted on a third-party platform without "
            "authorisation."
        )
        wh_zh = "部分病人的個人資料在未經授權下被上載至第三方平台。"
    else:
        wh_en = "personal data of patients had been accessed without authorisation."
        wh_zh = "部分病人的個人資料在未經授權下被取覽。"
    financial = bool(set(fields) & FINANCIAL)
    return {
        "hospital": cfg.hospital_name,
        "hospital_zh": cfg.hospital_name_zh,
        "hotline": cfg.hotline,
        "verify_url": cfg.verify_url,
        "sender_id": cfg.sms_sender_id,
        "incident_id": inc.incident_id,
        "incident_date": date_en(inc.aware_at),
        "incident_date_zh": date_zh(inc.aware_at),
        "letter_date": date_en(now),
        "letter_date_zh": date_zh(now),
        "fields_en": fen or "personal data",
        "fields_zh": fzh or "個人資料",
        "actions_en": " ".join(acts_en),
        "actions_zh": "".join(acts_zh),
        "told_en": told_en,
        "told_zh": told_zh,
        "what_happened_en": wh_en,
        "what_happened_zh": wh_zh,
        "not_involved_en": ""
        if financial
        else "No financial information or password was involved.",
        "not_involved_zh": "" if financial else "事件不涉及財務資料或密碼。",
    }


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{path}.{k}")


def variables(template: str, where: str) -> set[str]:
    try:
        return {
            name.split(".")[0].split("[")[0]
            for _, name, _, _ in string.Formatter().parse(template)
            if name is not None
        }
    except ValueError as exc:
        raise InputError(f"notice template {where}: {exc}") from None


class Renderer:
    """Checked once per campaign, then renders each recipient's text in memory."""

    def __init__(
        self, templates: dict[str, Any], context: dict[str, str], channels: Iterable[str]
    ) -> None:
        self.templates, self.context = templates, context
        provided = set(context) | set(RECIPIENT_VARS)
        for channel in channels:
            key = _TEMPLATE_KEY[channel]
            for where, text in _strings(templates[key], key):
                used = variables(text, where)
                unknown = sorted(used - provided)
                if unknown:
                    raise UsageError(
                        f"notice template {where} uses {{{unknown[0]}}}, which phiguard does "
                        f"not provide; nothing was queued"
                    )
                if (
                    key == "letter"
                    and not where.startswith("letter.salutation")
                    and used & set(RECIPIENT_VARS)
                ):
                    raise UsageError(
                        f"notice template {where} is printed once for every letter; "
                        f"per-recipient variables belong in the salutation; nothing was queued"
                    )
                empty = sorted(v for v in used & set(context) if not str(context[v]).strip())
                if empty:
                    setting = SETTING_OF.get(empty[0], empty[0].upper())
                    raise UsageError(
                        f"notice template {where} needs {{{empty[0]}}} but it is empty "
                        f"(set PHIGUARD_INCIDENTS_{setting}); nothing was queued"
                    )

    def text(self, template: str, **recipient: str) -> str:
        return template.format_map({**self.context, **recipient})

    def app(self, **recipient: str) -> tuple[str, str]:
        t = self.templates["app"]
        return self.text(t["title"], **recipient), self.text(t["body"], **recipient)

    def sms(self, **recipient: str) -> str:
        return self.text(self.templates["sms"]["body"], **recipient)

    def phone(self, **recipient: str) -> str:
        return self.text(self.templates["phone"]["script"], **recipient)

    def letter_static(self) -> dict[str, Any]:
        """The letter's paragraphs: the same for every recipient, rendered once."""
        t = self.templates["letter"]
        blank = {v: "" for v in RECIPIENT_VARS}
        return {
            k: [self.text(p, **blank) for p in v] if isinstance(v, list) else self.text(v, **blank)
            for k, v in t.items()
            if k not in ("salutation_en", "salutation_zh")
        }

    def salutation(self, name_en: str, name_zh: str) -> tuple[str, str]:
        t = self.templates["letter"]
        return (
            self.text(t["salutation_en"], name_en=name_en, name_zh=name_zh or name_en),
            self.text(t["salutation_zh"], name_en=name_en, name_zh=name_zh or name_en),
        )
