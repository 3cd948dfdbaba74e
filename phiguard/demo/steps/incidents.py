"""Chapter: the response. The incident opens from the contractor alert and the leak scan, is
contained, scored, put on the regulators' clocks, reported, and the patients are told — with a
code a phisher cannot fake."""

from __future__ import annotations

import re
import time

from phiguard.demo.story import Story
from phiguard.errors import Conflict, NotFound
from phiguard.incidents import cases, containment, letters, notify, reports, verification
from phiguard.incidents.settings import IncidentSettings
from phiguard.incidents.transports import MockTransport

CODE = re.compile(r"[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}")
ACTOR = "demo:privacy-officer"


def run(story: Story) -> None:
    alert_id, scan = story.state.get("alert_id"), story.state.get("scan")
    if not alert_id and not scan:
        return  # neither detection nor the leak scanner ran: nothing to respond to
    app = story.app
    # The demo hospital plays a designated Cap. 653 operator (designation lists are not public).
    cfg = IncidentSettings(cap653_designated=True, transports="mock")
    story.chapter("6 · Response: contain, assess, notify")
    try:
        iid = cases.open_from(app, actor=ACTOR, alert_id=alert_id, scan_doc=scan, cfg=cfg)
    except NotFound:  # the alert is gone (resolved and purged): the scan alone will do
        iid = cases.open_from(app, actor=ACTOR, scan_doc=scan, cfg=cfg)
    story.state["incident_id"] = iid
    s = cases.summary(app, iid, cfg)
    came = " + ".join(
        x for x in (f"alert {alert_id}" if alert_id else "", "the leak scan" if scan else "") if x
    )
    story.say(
        f"  opened [bold]{iid}[/bold] from {came}: {s['affected_count']:,} patients, "
        f"fields {', '.join(s['fields_exposed'])}; 15 PCPD playbook tasks assigned"
    )

    vendor = s["vendor_id"]
    if vendor:
        try:
            done = containment.suspend_vendor(app, iid, vendor, actor="demo:ciso")
            if done.get("already_suspended"):
                story.say(
                    f"  contained: vendor {vendor} was already suspended by the kill switch; "
                    "the incident records it and ticks the containment task"
                )
            else:
                story.say(
                    f"  contained: vendor {vendor} suspended — {done['accounts_disabled']} "
                    f"accounts disabled, {done['grants_revoked']} grants revoked (one "
                    "command, audited)"
                )
        except Conflict:
            story.say(f"  contained: vendor {vendor} was already suspended")
    e = cases.summary(app, iid, cfg)["enisa"]
    story.say(
        f"  ENISA severity SE = DPC {e['dpc']:g} × EI {e['ei']:g} + CB {e['cb']:g} = "
        f"[bold]{e['score']:g} → {e['band']}[/bold]"
    )
    for name in ("dpc", "ei", "cb_confidentiality", "cb_malicious"):
        story.say(f"    {name}: {e['factors'][name]['rationale']}")

    story.say("  clocks (Hong Kong time):")
    for name, c in cases.summary(app, iid, cfg)["clocks"].items():
        if c["state"] == "not_applicable":
            continue
        story.say(f"    {name:<9} due {c['due']}  {c['state']:<8} — {c['basis']}")

    out = app.home.exports
    out.mkdir(exist_ok=True)
    for kind in ("pcpd", "cap653"):
        r = reports.write(app, iid, kind, out / f"{iid}-{kind}.pdf", actor=ACTOR, cfg=cfg)
        story.say(
            f"  {kind.upper()} report (English + 中文): {r['pdf']} ({r['pages']} pages) + .json"
        )
    t = time.perf_counter()
    lr = letters.write_letters(app, iid, out / f"{iid}-letters.pdf", actor=ACTOR, cfg=cfg)
    story.say(
        f"  {lr.letters:,} bilingual letters in one print-ready PDF in "
        f"{time.perf_counter() - t:.1f} s: {lr.pdf} (+ mail-house CSV)"
    )

    camp = notify.create_campaign(app, iid, "app,sms", actor=ACTOR, cfg=cfg)
    tr = {"app": MockTransport("app"), "sms": MockTransport("sms")}
    sent = (
        notify.dispatch(app, camp.campaign_id, tr, actor=ACTOR, cfg=cfg)
        if camp.campaign_id
        else None
    )
    calls = notify.status(app, iid)["by_channel"].get("phone", {}).get("queued", 0)
    queued = ", ".join(f"{c} {n:,}" for c, n in camp.queued.items() if c != "phone") or "none"
    story.say(
        f"  app and SMS notices queued: {queued}"
        + (f"; sent through mock gateways: {sum(sent.sent.values()):,}" if sent else "")
        + f"; {calls:,} patients with no channel on file go on the telephone call list"
    )
    messages = [*tr["sms"].sent.values(), *tr["app"].sent.values()]
    if messages:
        m = messages[0]
        code = CODE.search(m.body)
        if code:
            ok = verification.check(app, code.group(0), client="demo:hotline", cfg=cfg)
            fake = verification.check(app, "7K3Q-9XWM-2HPD", client="demo:hotline", cfg=cfg)
            story.say(
                f"  a patient checks the code on their {m.channel} notice: {code.group(0)} → "
                f"[bold]{ok.status}[/bold]; a phisher's made-up code → {fake.status}"
            )
        story.say(
            "  no SMS carries a link; every notice says the hospital never asks for an "
            "HKID, a password or a payment"
        )
