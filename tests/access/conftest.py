"""Factories for access tests: a small hospital world written straight to the database
(reference data is the foundation's; these tests are about what access governance does
with it)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from phiguard.access import grants
from phiguard.access.settings import AccessSettings
from phiguard.app import App
from phiguard.storage.models import Account, Contract, Patient, Vendor

MAC = b"\x00" * 16


class World:
    """Builds vendors, accounts and patients; ``today`` is the clock's Hong Kong date."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.today = app.clock.now().date()

    def vendor(
        self,
        vendor_id: str = "V1",
        *,
        start: date | None = None,
        end: date | None = None,
        dpa: bool = True,
        assessed: date | None = None,
        contract: bool = True,
    ) -> str:
        with self.app.session() as s:
            s.add(
                Vendor(
                    vendor_id=vendor_id,
                    name=f"{vendor_id} Ltd",
                    dpa_signed=dpa,
                    last_assessment=assessed or self.today - timedelta(days=30),
                    status="active",
                    row_mac=MAC,
                )
            )
            s.flush()
            if contract:
                s.add(
                    Contract(
                        contract_id=f"C-{vendor_id}",
                        vendor_id=vendor_id,
                        start=start or self.today - timedelta(days=100),
                        end=end or self.today + timedelta(days=100),
                        dpa_signed=dpa,
                    )
                )
        return vendor_id

    def account(
        self,
        account_id: str,
        *,
        employer: str = "HA",
        role: str = "doctor",
        cluster: str = "KEC",
        department: str = "MED",
        **kw: Any,
    ) -> str:
        with self.app.session() as s:
            s.add(
                Account(
                    account_id=account_id,
                    employer=employer,
                    role=role,
                    department=department,
                    cluster=cluster,
                    status="active",
                    row_mac=MAC,
                    **kw,
                )
            )
        return account_id

    def contractor(
        self, account_id: str, vendor_id: str = "V1", *, trained: bool = True, **kw: Any
    ) -> str:
        from phiguard.access.assessments import record_training

        self.account(
            account_id,
            employer=vendor_id,
            role="vendor_engineer",
            cluster="ALL",
            department="IT",
            **kw,
        )
        if trained:
            record_training(
                self.app,
                account_id,
                completed_on=self.today - timedelta(days=10),
                expires_on=self.today + timedelta(days=355),
                actor="hr",
            )
        return account_id

    def patient(self, patient_id: str, cluster: str = "KEC", *, vip: bool = False) -> str:
        with self.app.session() as s:
            s.add(
                Patient(
                    patient_id=patient_id,
                    pii=b"",
                    sex="U",
                    cluster=cluster,
                    has_phone=False,
                    has_address=False,
                    app_registered=False,
                    vip=vip,
                    is_canary=False,
                    row_mac=MAC,
                )
            )
        return patient_id

    def standard(self) -> World:
        """V1 under contract, contractor c1 (trained), staff approvers m1, m2, clinician d1,
        patients P1 (KEC), P2 (KWC), VIP1 (KEC, restricted). One transaction."""
        from phiguard.access.models import TrainingRecord

        today = self.today
        with self.app.session() as s:
            s.add(
                Vendor(
                    vendor_id="V1",
                    name="V1 Ltd",
                    dpa_signed=True,
                    last_assessment=today - timedelta(days=30),
                    status="active",
                    row_mac=MAC,
                )
            )
            s.flush()
            s.add(
                Contract(
                    contract_id="C-V1",
                    vendor_id="V1",
                    start=today - timedelta(days=100),
                    end=today + timedelta(days=100),
                    dpa_signed=True,
                )
            )
            for aid, employer, role, cluster in (
                ("c1", "V1", "vendor_engineer", "ALL"),
                ("m1", "HA", "it_manager", "KEC"),
                ("m2", "HA", "privacy_officer", "KEC"),
                ("d1", "HA", "doctor", "KEC"),
            ):
                s.add(
                    Account(
                        account_id=aid,
                        employer=employer,
                        role=role,
                        department="X",
                        cluster=cluster,
                        status="active",
                        row_mac=MAC,
                    )
                )
            for pid, cluster, vip in (
                ("P1", "KEC", False),
                ("P2", "KWC", False),
                ("VIP1", "KEC", True),
            ):
                s.add(
                    Patient(
                        patient_id=pid,
                        pii=b"",
                        sex="U",
                        cluster=cluster,
                        has_phone=False,
                        has_address=False,
                        app_registered=False,
                        vip=vip,
                        is_canary=False,
                        row_mac=MAC,
                    )
                )
            s.flush()
            s.add(
                TrainingRecord(
                    account_id="c1",
                    course="phi-privacy",
                    completed_on=today - timedelta(days=10),
                    expires_on=today + timedelta(days=355),
                    recorded_by="hr",
                    recorded_at=self.app.clock.now(),
                )
            )
        return self

    def grant(
        self,
        account_id: str = "c1",
        *,
        cluster: str = "KEC",
        fields: str = "name,sex,hospital_no",
        actions: str = "read,search",
        max_rows: int = 20,
        purpose: str = "HOPERAT",
        duration: str = "8h",
        single_use: bool = False,
        approvers: tuple[str, ...] = ("m1", "m2"),
    ) -> str:
        req = grants.request_access(
            self.app,
            account_id=account_id,
            cluster=cluster,
            fields=fields,
            actions=actions,
            max_rows=max_rows,
            purpose=purpose,
            ticket="CHG-1",
            reason="database maintenance",
            duration=duration,
            single_use=single_use,
        )
        outcome = None
        for who in approvers[: req.required_approvals]:
            outcome = grants.approve(self.app, req.request_id, who)
        assert outcome is not None and outcome.grant is not None
        return outcome.grant.grant_id


def configure(app: App, **overrides: Any) -> AccessSettings:
    """Give this app its own access settings (and a fresh decision point)."""
    from phiguard.access.pdp import invalidate

    settings = AccessSettings(**overrides)
    app.__dict__["_access_settings"] = settings
    invalidate(app)
    return settings


@pytest.fixture
def world(app: App) -> World:
    return World(app).standard()


@pytest.fixture
def sqlite_world(sqlite_app: App) -> World:
    return World(sqlite_app).standard()


class Recorder:
    """Wraps the app's audit log (same contract: ``record_action``) and remembers what was
    recorded, so tests can check that an action reached the log."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entries: list[dict[str, Any]] = []

    def record_action(self, tag: str, *, actor: str, subject: str, detail: dict[str, Any]) -> None:
        self.inner.record_action(tag, actor=actor, subject=subject, detail=detail)
        self.entries.append({"tag": str(tag), "actor": actor, "subject": subject, **detail})

    def tags(self) -> list[str]:
        return [e["tag"] for e in self.entries]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def audit(app: App) -> Recorder:
    rec = Recorder(app.audit)
    app.__dict__["audit"] = rec
    return rec


@pytest.fixture
def sqlite_audit(sqlite_app: App) -> Recorder:
    rec = Recorder(sqlite_app.audit)
    sqlite_app.__dict__["audit"] = rec
    return rec
