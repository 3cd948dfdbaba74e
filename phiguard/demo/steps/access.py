"""Chapter 3: the contractor's small grant, the export the decision point refuses, and the
vendor suspended in one command."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from phiguard.access import assessments, grants, vendors
from phiguard.access.pdp import decide
from phiguard.clock import HKT, FixedClock, parse_ts
from phiguard.demo.story import Story
from phiguard.storage.models import Patient

ACTOR = "demo:security-duty-officer"


def _seed(labels: dict[str, Any]) -> dict[str, Any] | None:
    for s in labels.get("scenarios", []):
        if s.get("kind") == "bulk_export" and not s.get("decoy") and s.get("vendor_id"):
            return s
    return None


def run(story: Story) -> None:
    story.chapter("3 · Contractor access: least privilege, enforced")
    seed = _seed(story.labels)
    if seed is None:
        story.say("  (no contractor export planted in this hospital; nothing to show)")
        return
    app = story.app
    real_clock = app.clock
    account, vendor = seed["account_id"], seed["vendor_id"]
    details = seed.get("details") or {}
    export_at = parse_ts(seed["first_ts"]) if seed.get("first_ts") else real_clock.now()
    clock = FixedClock(export_at - timedelta(days=1))
    app.clock = clock
    try:
        _tell(story, app, clock, account, vendor, details, seed, export_at)
    finally:
        app.clock = real_clock


def _tell(
    story: Story,
    app: Any,
    clock: FixedClock,
    account: str,
    vendor: str,
    details: dict[str, Any],
    seed: dict[str, Any],
    export_at: datetime,
) -> None:
    info = vendors.vendor_summary(app, vendor)
    current = [k for k in info["contracts"] if k["current"]]
    contract = (
        f"contract {current[0]['contract_id']} to {current[0]['end'] or 'open end'}, "
        f"DPA {'signed' if current[0]['dpa_signed'] else 'NOT signed'}"
        if current
        else "no contract in force"
    )
    story.say(
        f"  vendor {vendor} ({info['name']}): {contract}; "
        f"{len(info['accounts'])} contractor accounts"
    )
    _onboard(story, app, account, vendor, info, export_at)

    held = grants.list_grants(app, account_id=account)
    g = next(
        (x for x in held if x["grant_id"] == details.get("grant_id")), held[0] if held else None
    )
    if g is None:
        story.say(f"  {account} holds no grant")
        return
    story.say(
        f"  [bold]{account}[/bold]'s grant {g['grant_id']}: {g['actions']} on "
        f"{g['scope_cluster']}, fields {g['scope_fields']}, at most {g['max_rows']:,} "
        f"rows, {g['purpose']}, {g['valid_from']} → {g['valid_to']}"
    )

    # an everyday, in-scope lookup
    start, end = parse_ts(g["valid_from"]), parse_ts(g["valid_to"])
    inside = export_at if start <= export_at < end else start + (end - start) / 2
    with app.session() as s:
        pid = s.scalar(
            select(Patient.patient_id)
            .where(Patient.cluster == g["scope_cluster"], Patient.vip.is_(False))
            .limit(1)
        )
    if pid:
        ok = decide(app, account=account, action="read", patient=pid, at=inside)
        masks: list[str] = next(
            (o["fields"] for o in ok["obligations"] if o["type"] == "mask_fields"), []
        )
        story.say(
            f"  decide: {account} reads patient {pid} → [green]{ok['decision']}[/green]"
            + (f", the proxy must mask {', '.join(masks)}" if masks else "")
        )

    # the night of the leak: the export, asked of the decision point
    fields = details.get("fields") or "name,sex,hkid,hospital_no,procedure"
    cluster = details.get("export_cluster") or "KEC"
    rows = int(seed.get("patient_count") or 56_000)
    no = decide(
        app,
        account=account,
        action="export",
        cluster=cluster,
        rows=rows,
        fields=fields,
        purpose="SYSADMIN",
        at=export_at,
    )
    story.say(
        f"  {export_at.astimezone(HKT):%d %b %H:%M} decide: export of {rows:,} {cluster} "
        f"patients with {fields} → [bold red]{no['decision']}[/bold red]"
    )
    for reason in no["reasons"]:
        story.say(f"    · {reason}")

    # the kill switch
    clock.at = max(
        export_at + timedelta(minutes=48),
        export_at.astimezone(HKT).replace(hour=2, minute=0, second=0, microsecond=0),
    )
    res = vendors.suspend(
        app, vendor, reason=f"suspected leak by {account} ({seed.get('id')})", actor=ACTOR
    )
    story.say(
        f"  {clock.at.astimezone(HKT):%H:%M} [bold]phiguard vendors suspend {vendor}[/bold]"
        f": {len(res.grants_revoked)} grant(s) revoked, {len(res.accounts_disabled)} "
        "account(s) disabled, in one audited transaction"
    )
    after = decide(app, account=account, action="read", patient=pid or "", at=clock.at)
    story.say(f"  decide again: {after['decision']} — {'; '.join(after['reasons'][:2])}")
    story.state["access"] = {
        "account_id": account,
        "vendor_id": vendor,
        "grant_id": g["grant_id"],
        "export_decision": no,
        "suspended": res.as_dict(),
    }


def _onboard(
    story: Story, app: Any, account: str, vendor: str, info: dict[str, Any], export_at: datetime
) -> None:
    """Training and assessment records a real deployment keeps; the generator has none."""
    day = export_at.astimezone(HKT).date()
    done = []
    if not any(t["valid"] for t in assessments.training_list(app, account)):
        assessments.record_training(
            app,
            account,
            completed_on=day - timedelta(days=60),
            expires_on=day + timedelta(days=305),
            actor="demo:hr",
        )
        done.append("privacy training (valid 1 year)")
    if not info["assessment"]["holds"]:
        _, questions = assessments.questionnaire()
        answers = {q.id: "yes" for q in questions}
        answers["no_local_copies"] = "partial"
        a = assessments.record_assessment(
            app,
            vendor,
            answers=answers,
            assessor="demo:vendor-risk",
            completed_on=day - timedelta(days=90),
            findings=[{"severity": "medium", "title": "USB storage not blocked on laptops"}],
        )
        done.append(f"security assessment (score {a.score:g}/100, one medium finding)")
    if done:
        story.say(f"  on file for {account}/{vendor}: {', '.join(done)}")
