"""Containment actions taken from an incident: suspend the vendor, disable an account,
revoke a grant, preserve an evidence bundle. Each is one command and one audit record.

Vendor suspension belongs to the access-governance part (``phiguard vendors suspend``):
when its service exists it is called, so the kill switch behaves the same from an incident
as from the access CLI (version counter, grant history, decision-point cache). Without it
(an older build, or a partial install) the same effect is written directly on the
foundation tables, and the timeline says which path was taken.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from phiguard.audit.tags import Tag
from phiguard.errors import Conflict, NotFound, PhiguardError
from phiguard.incidents import playbook
from phiguard.incidents.cases import get, log
from phiguard.incidents.models import InvolvedAccount
from phiguard.storage.models import Account, Grant, Vendor

if TYPE_CHECKING:
    from phiguard.app import App


def _access_suspend() -> Any | None:
    """The access part's kill switch, ``phiguard.access.vendors.suspend``, when installed."""
    try:
        from phiguard.access.vendors import suspend
    except ImportError:
        return None
    return suspend


def _direct_suspend(
    app: App, vendor_id: str, actor: str, reason: str, now: datetime
) -> dict[str, Any]:
    with app.session() as s:
        vendor = s.get(Vendor, vendor_id)
        if vendor is None:
            raise NotFound(f"no vendor {vendor_id!r}")
        if vendor.status == "suspended":
            raise Conflict(f"vendor {vendor_id} is already suspended")
        vendor.status = "suspended"
        accts = list(s.scalars(select(Account).where(Account.employer == vendor_id)))
        ids = [a.account_id for a in accts]
        for a in accts:
            a.status = "disabled"
        grants = (
            list(
                s.scalars(select(Grant).where(Grant.account_id.in_(ids), Grant.status == "active"))
            )
            if ids
            else []
        )
        for g in grants:
            g.status = "revoked"
        try:  # keep the access part's decision cache honest when its table exists
            from phiguard.access.models import AccessState

            state = s.get(AccessState, 1)
            if state is not None:
                state.version += 1
        except ImportError:
            pass
    app.record(
        Tag.VENDOR_SUSPENDED,
        actor=actor,
        subject=vendor_id,
        reason=reason,
        accounts=len(ids),
        grants=len(grants),
    )
    for account_id in ids:
        app.record(Tag.ACCOUNT_DISABLED, actor=actor, subject=account_id, reason=reason)
    for g in grants:
        app.record(Tag.GRANT_REVOKED, actor=actor, subject=g.grant_id, reason=reason)
    return {"accounts_disabled": len(ids), "grants_revoked": len(grants), "path": "direct"}


def suspend_vendor(
    app: App, incident_id: str, vendor_id: str, *, actor: str, reason: str = ""
) -> dict[str, Any]:
    now = app.clock.now()
    reason = reason or f"contained under incident {incident_id}"
    with app.session() as s:
        get(s, incident_id)
    fn = _access_suspend()
    if fn is not None:
        done = fn(app, vendor_id, reason=reason, actor=actor).as_dict()
        outcome: dict[str, Any] = {
            "path": "access",
            "accounts_disabled": len(done["accounts_disabled"]),
            "grants_revoked": len(done["grants_revoked"]),
            "requests_cancelled": len(done["requests_cancelled"]),
            "breakglass_ended": len(done["breakglass_ended"]),
            "already_suspended": done["already_suspended"],
        }
    else:
        outcome = _direct_suspend(app, vendor_id, actor, reason, now)
    with app.session() as s:
        inc = get(s, incident_id)
        if inc.status == "open":
            inc.status, inc.contained_at = "contained", now
        inc.vendor_id = inc.vendor_id or vendor_id
        if s.get(InvolvedAccount, (incident_id, f"vendor:{vendor_id}")) is None and not any(
            a.vendor_id == vendor_id
            for a in s.scalars(
                select(InvolvedAccount).where(InvolvedAccount.incident_id == incident_id)
            )
        ):
            s.add(
                InvolvedAccount(
                    incident_id=incident_id,
                    account_id=f"vendor:{vendor_id}",
                    vendor_id=vendor_id,
                    role="vendor",
                    evidence=reason,
                )
            )
        how = (
            f"{outcome['accounts_disabled']} accounts disabled, "
            f"{outcome['grants_revoked']} grants revoked"
            + (" by the access service" if outcome["path"] == "access" else " directly")
        )
        log(
            s,
            incident_id,
            now,
            "contained",
            f"vendor {vendor_id} suspended by {actor} ({how})",
            actor,
        )
        playbook.auto_complete(s, incident_id, "contain.access", at=now, by=actor)
    app.record(
        Tag.INCIDENT_CONTAINED,
        actor=actor,
        subject=incident_id,
        vendor_id=vendor_id,
        action="suspend_vendor",
    )
    return {"incident_id": incident_id, "vendor_id": vendor_id, **outcome}


def disable_account(
    app: App, incident_id: str, account_id: str, *, actor: str, reason: str = ""
) -> dict[str, Any]:
    now = app.clock.now()
    reason = reason or f"contained under incident {incident_id}"
    with app.session() as s:
        inc = get(s, incident_id)
        acct = s.get(Account, account_id)
        if acct is None:
            raise NotFound(f"no account {account_id!r}")
        if acct.status == "disabled":
            raise Conflict(f"account {account_id} is already disabled")
        acct.status = "disabled"
        grants = list(
            s.scalars(select(Grant).where(Grant.account_id == account_id, Grant.status == "active"))
        )
        for g in grants:
            g.status = "revoked"
        if inc.status == "open":
            inc.status, inc.contained_at = "contained", now
        log(
            s,
            incident_id,
            now,
            "contained",
            f"account {account_id} disabled by {actor}, {len(grants)} grants revoked",
            actor,
        )
        playbook.auto_complete(s, incident_id, "contain.access", at=now, by=actor)
    app.record(Tag.ACCOUNT_DISABLED, actor=actor, subject=account_id, reason=reason)
    for g in grants:
        app.record(Tag.GRANT_REVOKED, actor=actor, subject=g.grant_id, reason=reason)
    app.record(
        Tag.INCIDENT_CONTAINED,
        actor=actor,
        subject=incident_id,
        account_id=account_id,
        action="disable_account",
    )
    return {"incident_id": incident_id, "account_id": account_id, "grants_revoked": len(grants)}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def preserve_evidence(app: App, incident_id: str, *, actor: str, out: Path | None = None) -> Path:
    """Freeze what the investigation rests on: the audit part's signed evidence bundle of every
    logged event of the involved accounts (``phiguard.audit.evidence``: inclusion proofs, a
    verifier that runs offline), and a manifest with the SHA-256 of every audit-log file as it
    is now. The manifest is written even when no bundle can be (nothing sealed yet)."""
    now = app.clock.now()
    with app.session() as s:
        get(s, incident_id)
        accounts = sorted(
            a.account_id
            for a in s.scalars(
                select(InvolvedAccount).where(InvolvedAccount.incident_id == incident_id)
            )
            if not a.account_id.startswith("vendor:")
        )
    target = out or app.home.exports / "evidence" / incident_id
    target.mkdir(parents=True, exist_ok=True)
    files = []
    # The sealed log is the evidence; the Parquet store is rebuilt from it, so it is not hashed.
    for root in (app.home.audit,):
        for p in sorted(root.rglob("*")):
            if p.is_file() and target not in p.parents:
                files.append(
                    {
                        "path": str(p.relative_to(app.home.root)),
                        "bytes": p.stat().st_size,
                        "sha256": _sha256(p),
                    }
                )
    bundle, bundle_error = None, None
    try:
        from phiguard.audit import evidence
    except ImportError:
        evidence = None  # type: ignore[assignment]
    if evidence is not None:
        indices: list[int] = []
        for acct in accounts:
            indices += evidence.select_events(app, account=acct, since=None, until=None)
        try:
            bundle = evidence.export(
                app,
                target / "audit-evidence.zip",
                indices=indices,
                selection={"incident": incident_id, "accounts": accounts},
            )
            files.append(
                {"path": str(bundle), "bytes": bundle.stat().st_size, "sha256": _sha256(bundle)}
            )
        except PhiguardError as exc:  # e.g. nothing sealed yet: the manifest still stands
            bundle_error = str(exc)
    manifest = {
        "incident_id": incident_id,
        "preserved_at": now.isoformat(),
        "by": actor,
        "files": files,
        "audit_bundle": str(bundle) if bundle else None,
        "audit_bundle_error": bundle_error,
        "accounts": accounts,
    }
    path = target / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    digest = _sha256(path)
    with app.session() as s:
        log(
            s,
            incident_id,
            now,
            "evidence",
            f"evidence manifest of {len(files)} files preserved (sha256 {digest[:16]}…)",
            actor,
        )
        playbook.auto_complete(s, incident_id, "gather.evidence", at=now, by=actor)
    app.record(
        Tag.INCIDENT_EVIDENCE_PRESERVED,
        actor=actor,
        subject=incident_id,
        files=len(files),
        manifest_sha256=digest,
    )
    return path
