"""Who the patient is to the account: VIP/restricted without a care relationship, the account
holder's own record, a co-worker's, a family member's (same surname and home address, compared
as blind indexes: nothing is decrypted), and access nothing explains."""

from __future__ import annotations

from typing import Any

from phiguard.detection.rules.base import Context, Hit, Rule, plural, samples

CARE = "(by_account OR by_department)"
# A grant covering the patient's cluster authorises a contractor's or service account's work
# on any patient there (a system export touches VIPs and staff too); it does not excuse a
# person's own or their family's record.
AUTHORISED = "(by_account OR by_department OR by_grant)"
KINDS = {
    # name: (condition on access_x, severity, severity when many, "many" threshold)
    "vip": (f"vip AND NOT {AUTHORISED}", "high", "high", 1),
    "self": ("is_self", "high", "high", 1),
    "coworker": (f"is_coworker AND NOT {AUTHORISED}", "high", "high", 1),
    "family": ("is_family AND NOT by_account", "high", "high", 1),
    "family_treated": ("is_family AND by_account", "low", "low", 1),
}


def _relations_sql() -> str:
    cols = []
    for kind, (cond, *_rest) in KINDS.items():
        cols.append(f"sum(CASE WHEN {cond} THEN 1 ELSE 0 END) AS n_{kind}")
        cols.append(f"min(CASE WHEN {cond} THEN first_us END) AS f_{kind}")
        cols.append(f"max(CASE WHEN {cond} THEN last_us END) AS l_{kind}")
        cols.append(f"{{{{ d.sample('patient_id', n, {cond!r}) }}}} AS s_{kind}")
    return (
        "SELECT account_id, dayno, {{ d.date_of('dayno') }} AS day,\n       "
        + ",\n       ".join(cols)
        + "\nFROM access_x\nWHERE dayno >= {{ w.report_dayno }} AND last_us >= {{ w.report_us }}"
        "\n  AND (vip OR is_self OR is_coworker OR is_family)\nGROUP BY account_id, dayno"
    )


RELATIONS = _relations_sql()

RULE_OF = {
    "vip": "vip_no_relationship",
    "self": "self_access",
    "coworker": "coworker",
    "family": "family",
    "family_treated": "family",
}


def _text(kind: str, n: int, c: Context, first: int, last: int) -> str:
    span = c.span(first, last)
    return {
        "vip": f"opened the records of {plural(n, 'VIP/restricted patient')} {span} with no "
        "encounter of the account or its department",
        "self": f"opened the account holder's own patient record {span}",
        "coworker": f"opened the records of {plural(n, 'co-worker')} (patients who are also "
        f"account holders) {span} with no care relationship",
        "family": f"opened the records of {plural(n, 'patient')} with the account holder's "
        f"surname and home address {span}, without being their clinician",
        "family_treated": f"treated {plural(n, 'patient')} with the account holder's surname "
        f"and home address {span} (own encounter; a conflict of interest "
        "to review)",
    }[kind]


def assess_relations(r: dict[str, Any], c: Context) -> list[Hit]:
    acc = r["account_id"]
    hits = []
    for kind, (_cond, sev, sev_many, many) in KINDS.items():
        n = int(r[f"n_{kind}"] or 0)
        if not n:
            continue
        first, last = r[f"f_{kind}"], r[f"l_{kind}"]
        hits.append(
            Hit(
                RULE_OF[kind],
                sev_many if n >= many else sev,
                acc,
                first,
                last,
                n,
                [_text(kind, n, c, first, last)],
                samples(r[f"s_{kind}"]),
                acc,
                c.vendor_of(acc),
                dayno=r["dayno"],
            )
        )
    return hits


UNEXPLAINED = """
WITH hits AS (
  SELECT d.account_id, d.dayno, d.day, d.n_patients, d.n_unexplained
  FROM acct_day d JOIN accounts a ON a.account_id = d.account_id
  WHERE d.dayno >= {{ w.report_dayno }} AND d.last_us >= {{ w.report_us }}
    AND NOT a.needs_grant
    AND d.n_unexplained >= {{ p.unexplained_min_patients }}
    AND d.n_unexplained >= {{ p.unexplained_min_share }} * d.n_patients
)
SELECT hits.account_id, hits.dayno, hits.day, hits.n_patients, hits.n_unexplained,
       min(x.first_us) AS first_us, max(x.last_us) AS last_us,
       {{ d.sample('x.patient_id', n) }} AS sample
FROM hits JOIN access_x x ON x.account_id = hits.account_id AND x.dayno = hits.dayno
WHERE NOT x.explained
GROUP BY hits.account_id, hits.dayno, hits.day, hits.n_patients, hits.n_unexplained
"""


def assess_unexplained(r: dict[str, Any], c: Context) -> list[Hit]:
    acc, n, total = r["account_id"], int(r["n_unexplained"]), int(r["n_patients"])
    text = (
        f"opened {plural(n, 'patient record')} on {r['day']} that no encounter of the "
        f"account or its department explains ({n / total:.0%} of the {total} it opened)"
    )
    severity = "high" if n >= c.p.unexplained_high_patients else "medium"
    return [
        Hit(
            "unexplained_access",
            severity,
            acc,
            r["first_us"],
            r["last_us"],
            n,
            [text],
            samples(r["sample"]),
            acc,
            c.vendor_of(acc),
            dayno=r["dayno"],
        )
    ]


RULES = [
    Rule(
        "relationships",
        "relationship",
        "VIP, self, co-worker and family access",
        RELATIONS,
        assess_relations,
        needs=("access_x",),
        emits=("vip_no_relationship", "self_access", "coworker", "family"),
    ),
    Rule(
        "unexplained_access",
        "relationship",
        "Access no encounter or department explains",
        UNEXPLAINED,
        assess_unexplained,
        needs=("acct_day", "access_x"),
    ),
]
