"""Features per account-day, computed by the engine from the shared ``acct_day`` stage.

These are the numbers the anomaly score looks at: how much the account did, to how many
patients, how much of it nothing explains, how much left the system (exports, prints), at
night, from how many places, how often it was refused, how many VIPs it opened without care,
how much of it fell outside its grants.
"""

from __future__ import annotations

FEATURES = (
    "n_events",
    "n_patients",
    "n_unexplained",
    "n_exported",
    "n_night",
    "n_ips",
    "n_denied",
    "n_vip",
    "n_outside_grant",
)

# Plain-language names used in reasons ("… 40× its usual unexplained patients").
LABELS = {
    "n_events": "events",
    "n_patients": "distinct patients",
    "n_unexplained": "unexplained patients",
    "n_exported": "exported or printed records",
    "n_night": "night-time events",
    "n_ips": "client addresses",
    "n_denied": "denied attempts",
    "n_vip": "VIP patients without care",
    "n_outside_grant": "patients outside its grants",
}

FEATURES_SQL = (
    """
SELECT ad.account_id, ad.dayno, ad.day, ad.first_us, ad.last_us,
       a.role, a.department, a.vendor_id,
       """
    + ", ".join(f"ad.{f}" for f in FEATURES)
    + """
FROM acct_day ad LEFT JOIN accounts a ON a.account_id = ad.account_id
"""
)
