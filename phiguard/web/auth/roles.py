"""Roles, permissions and API-token scopes: the one table that says who may do what.

Least privilege: the admin runs the system (users, tokens, audit-log health) but sees no
patient data; the auditor reads everything a reviewer needs and changes nothing; only the
privacy officer and the security analyst see patients. Routes name a permission; they never
test role names themselves, so this table is the whole policy and the authorisation-matrix
test checks it route by route.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    PRIVACY_OFFICER = "privacy_officer"
    SECURITY_ANALYST = "security_analyst"
    VENDOR_MANAGER = "vendor_manager"
    AUDITOR = "auditor"


#: roles whose accounts cannot exist without TOTP (ASVS 6.3.3 / HKCERT: MFA for admins)
MFA_REQUIRED = frozenset({Role.ADMIN, Role.PRIVACY_OFFICER})


class Perm(StrEnum):
    DASHBOARD = "dashboard:view"
    ALERTS_READ = "alerts:read"
    ALERTS_TRIAGE = "alerts:triage"
    REVEAL = "identifiers:reveal"
    PATIENTS_READ = "patients:read"
    INCIDENTS_READ = "incidents:read"
    INCIDENTS_WRITE = "incidents:write"
    LEAKS_READ = "leaks:read"
    LEAKS_SCAN = "leaks:scan"
    VENDORS_READ = "vendors:read"
    VENDORS_SUSPEND = "vendors:suspend"
    GRANTS_REQUEST = "grants:request"
    GRANTS_APPROVE = "grants:approve"
    REVIEWS_WRITE = "reviews:write"
    AUDIT_READ = "audit:read"
    AUDIT_EXPORT = "audit:export"
    USERS_ADMIN = "users:admin"
    TOKENS_ADMIN = "tokens:admin"
    # machine-only: held by API tokens, never by a console role
    EVENTS_WRITE = "events:write"
    DECIDE = "decide"
    PORTAL_TICKETS = "portal:tickets"
    HISTORY_APP = "patients:history"


_ALL_READERS = {
    Role.ADMIN,
    Role.PRIVACY_OFFICER,
    Role.SECURITY_ANALYST,
    Role.VENDOR_MANAGER,
    Role.AUDITOR,
}
_INVESTIGATORS = {Role.PRIVACY_OFFICER, Role.SECURITY_ANALYST}

ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset(
        {
            Perm.DASHBOARD,
            Perm.AUDIT_READ,
            Perm.USERS_ADMIN,
            Perm.TOKENS_ADMIN,
        }
    ),
    Role.PRIVACY_OFFICER: frozenset(
        {
            Perm.DASHBOARD,
            Perm.ALERTS_READ,
            Perm.ALERTS_TRIAGE,
            Perm.REVEAL,
            Perm.PATIENTS_READ,
            Perm.INCIDENTS_READ,
            Perm.INCIDENTS_WRITE,
            Perm.LEAKS_READ,
            Perm.LEAKS_SCAN,
            Perm.VENDORS_READ,
            Perm.VENDORS_SUSPEND,
            Perm.GRANTS_APPROVE,
            Perm.REVIEWS_WRITE,
            Perm.AUDIT_READ,
            Perm.AUDIT_EXPORT,
        }
    ),
    Role.SECURITY_ANALYST: frozenset(
        {
            Perm.DASHBOARD,
            Perm.ALERTS_READ,
            Perm.ALERTS_TRIAGE,
            Perm.REVEAL,
            Perm.PATIENTS_READ,
            Perm.INCIDENTS_READ,
            Perm.INCIDENTS_WRITE,
            Perm.LEAKS_READ,
            Perm.LEAKS_SCAN,
            Perm.VENDORS_READ,
            Perm.VENDORS_SUSPEND,
            Perm.AUDIT_READ,
        }
    ),
    Role.VENDOR_MANAGER: frozenset(
        {
            Perm.DASHBOARD,
            Perm.VENDORS_READ,
            Perm.VENDORS_SUSPEND,
            Perm.GRANTS_REQUEST,
            Perm.GRANTS_APPROVE,
            Perm.REVIEWS_WRITE,
        }
    ),
    Role.AUDITOR: frozenset(
        {
            Perm.DASHBOARD,
            Perm.ALERTS_READ,
            Perm.INCIDENTS_READ,
            Perm.LEAKS_READ,
            Perm.VENDORS_READ,
            Perm.AUDIT_READ,
        }
    ),
}

#: permissions an API token may be given (scopes); console-only powers are not among them
TOKEN_SCOPES: frozenset[Perm] = frozenset(
    {
        Perm.EVENTS_WRITE,
        Perm.DECIDE,
        Perm.PORTAL_TICKETS,
        Perm.HISTORY_APP,
        Perm.ALERTS_READ,
        Perm.INCIDENTS_READ,
        Perm.LEAKS_READ,
        Perm.VENDORS_READ,
        Perm.AUDIT_READ,
    }
)


def role_has(role: str, perm: Perm) -> bool:
    try:
        return perm in ROLE_PERMS[Role(role)]
    except ValueError:
        return False


def parse_role(text: str) -> Role:
    from phiguard.errors import UsageError

    try:
        return Role(text.strip().lower())
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise UsageError(f"unknown role {text!r} (choose one of: {choices})") from None


def parse_scopes(text: str) -> list[Perm]:
    from phiguard.errors import UsageError

    scopes: list[Perm] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        perm: Perm | None
        try:
            perm = Perm(part)
        except ValueError:
            perm = None
        if perm is None or perm not in TOKEN_SCOPES:
            allowed = ", ".join(sorted(p.value for p in TOKEN_SCOPES))
            raise UsageError(f"unknown token scope {part!r} (choose from: {allowed})")
        if perm not in scopes:
            scopes.append(perm)
    if not scopes:
        raise UsageError("a token needs at least one scope")
    return scopes
