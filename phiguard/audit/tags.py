"""Event vocabulary: every action phiguard itself takes is written to the audit log with one
of these ``source:subject:action`` tags. Adding an action means adding a tag here first."""

from __future__ import annotations

from enum import StrEnum


class Tag(StrEnum):
    # reference data
    IMPORT_PATIENTS = "phiguard:patients:imported"
    IMPORT_ACCOUNTS = "phiguard:accounts:imported"
    IMPORT_VENDORS = "phiguard:vendors:imported"
    IMPORT_GRANTS = "phiguard:grants:imported"
    IMPORT_ENCOUNTERS = "phiguard:encounters:imported"
    HOME_INITIALISED = "phiguard:home:initialised"
    # audit log
    EVENTS_INGESTED = "audit:events:ingested"
    EVIDENCE_EXPORTED = "audit:evidence:exported"
    LOG_EXPORTED = "audit:log:exported"
    SEQ_GAP = "audit:source:gap"
    SOURCE_SILENT = "audit:source:silent"
    KEY_ROTATED = "audit:key:rotated"
    PERIOD_ERASED = "audit:period:erased"
    # access governance
    GRANT_REQUESTED = "access:grant:requested"
    GRANT_APPROVED = "access:grant:approved"
    GRANT_DENIED = "access:grant:denied"
    GRANT_REVOKED = "access:grant:revoked"
    GRANT_EXPIRED = "access:grant:expired"
    BREAK_GLASS = "access:breakglass:started"
    BREAK_GLASS_REVIEWED = "access:breakglass:reviewed"
    REVIEW_CERTIFIED = "access:review:certified"
    REVIEW_REVOKED = "access:review:revoked"
    VENDOR_SUSPENDED = "access:vendor:suspended"
    VENDOR_RESUMED = "access:vendor:resumed"
    ACCOUNT_DISABLED = "access:account:disabled"
    DECISION = "access:decision:made"
    # detection, leaks, incidents, console
    ALERT_RAISED = "detection:alert:raised"
    ALERT_RESOLVED = "detection:alert:resolved"
    LEAK_SCANNED = "leaks:scan:completed"
    INCIDENT_OPENED = "incidents:incident:opened"
    INCIDENT_CONTAINED = "incidents:incident:contained"
    INCIDENT_REPORTED = "incidents:report:written"
    NOTICES_QUEUED = "incidents:notices:queued"
    PATIENT_VIEWED = "console:patient:viewed"
    IDENTIFIER_REVEALED = "console:identifier:revealed"
    USER_LOGIN = "console:user:login"
    # console accounts, sessions and API clients
    USER_LOGIN_FAILED = "console:user:login-failed"
    USER_LOCKED = "console:user:locked"
    USER_LOGOUT = "console:user:logout"
    USER_CREATED = "console:user:created"
    USER_DISABLED = "console:user:disabled"
    USER_ENABLED = "console:user:enabled"
    PASSWORD_CHANGED = "console:user:password-changed"
    MFA_ENROLLED = "console:mfa:enrolled"
    WEBAUTHN_REGISTERED = "console:webauthn:registered"
    WEBAUTHN_REMOVED = "console:webauthn:removed"
    REAUTHENTICATED = "console:user:reauthenticated"
    SESSION_REVOKED = "console:session:revoked"
    TOKEN_CREATED = "console:token:created"
    TOKEN_ROTATED = "console:token:rotated"
    TOKEN_REVOKED = "console:token:revoked"
    PORTAL_TICKET_ISSUED = "console:portal:ticket-issued"
    PORTAL_OPENED = "console:portal:opened"
    PATIENT_HISTORY_SERVED = "console:patient:history-served"
