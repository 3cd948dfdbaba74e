"""Cedar policies: loading, validation against the schema, and evaluation.

Policies live in ``phiguard/access/policies/*.cedar`` (built in) and, optionally, an
operator's folder (``PHIGUARD_ACCESS_POLICY_DIR``, default ``HOME/policies``). Loading
parses every file, requires an ``@id`` on every policy (ids name the reasons of a
decision), and validates the whole set against ``schema.cedarschema``; any problem is one
:class:`~phiguard.errors.UsageError` naming the file and the policy, and nothing is loaded.

Evaluation through Cedar builds one entity set per account (cached on its
:class:`~phiguard.access.subjects.Subject`) and asks one request per candidate grant and
break-glass session in a single batch call.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import cedarpy

from phiguard.access.subjects import Subject
from phiguard.errors import UsageError

BUILTIN = "phiguard.access.policies"
SCHEMA_FILE = "schema.cedarschema"


@dataclass(frozen=True)
class Policy:
    policy_id: str
    effect: str
    reason: str
    source: str


@dataclass(frozen=True)
class PolicyStore:
    text: str
    policy_set: Any
    schema: Any
    policies: dict[str, Policy]
    fingerprint: str
    builtin_only: bool

    @property
    def forbids(self) -> list[str]:
        return [p.policy_id for p in self.policies.values() if p.effect == "forbid"]


def _builtin_files() -> list[tuple[str, str]]:
    root = resources.files(BUILTIN)
    return sorted(
        (f"builtin:{p.name}", p.read_text()) for p in root.iterdir() if p.name.endswith(".cedar")
    )


def builtin_schema() -> str:
    return resources.files(BUILTIN).joinpath(SCHEMA_FILE).read_text()


def load(extra_dir: Path | None = None) -> PolicyStore:
    files = _builtin_files()
    builtin_count = len(files)
    if extra_dir is not None and extra_dir.is_dir():
        files += sorted((str(p), p.read_text()) for p in extra_dir.glob("*.cedar"))
    schema_text = builtin_schema()
    policies: dict[str, Policy] = {}
    for source, text in files:
        try:
            doc = json.loads(cedarpy.policies_to_json_str(text))
        except ValueError as exc:
            raise UsageError(f"invalid Cedar policy in {source}: {_one_line(exc)}") from None
        if doc.get("templates"):
            raise UsageError(f"{source}: policy templates are not supported")
        for generated, body in doc.get("staticPolicies", {}).items():
            notes = body.get("annotations") or {}
            pid = notes.get("id")
            if not pid:
                raise UsageError(f'{source}: policy {generated} has no @id("...") annotation')
            if pid in policies:
                raise UsageError(
                    f"{source}: policy id {pid!r} is also used in {policies[pid].source}"
                )
            policies[pid] = Policy(pid, body["effect"], notes.get("reason") or pid, source)
    text = "\n".join(t for _, t in files)
    result = cedarpy.validate_policies(text, schema_text)
    if not result.validation_passed:
        names = result.id_annotations_by_policy_id
        first = result.errors[0]
        where = names.get(first.policy_id, first.policy_id)
        raise UsageError(
            f"Cedar policy {where!r} does not fit the schema: {_one_line(first.error)}"
        )
    try:
        policy_set = cedarpy.PolicySet.from_str(text)
        schema = cedarpy.Schema.from_str(schema_text)
    except ValueError as exc:  # pragma: no cover - validated above
        raise UsageError(f"invalid Cedar policies: {_one_line(exc)}") from None
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return PolicyStore(
        text, policy_set, schema, policies, digest, builtin_only=len(files) == builtin_count
    )


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())


# -- entities ---------------------------------------------------------------------------------
def _ref(kind: str, ident: str) -> dict[str, Any]:
    return {"__entity": {"type": kind, "id": ident}}


def entities_json(subject: Subject, breakglass_rows: int) -> list[dict[str, Any]]:
    attrs: dict[str, Any] = {
        "kind": subject.kind,
        "status": subject.status,
        "active_from": subject.active_from,
        "active_until": subject.active_until,
        "cluster": subject.cluster,
        "role": subject.role,
        "clinical": subject.clinical,
        "baseline_rows": subject.baseline_rows,
        "training_until": subject.training_until,
    }
    out: list[dict[str, Any]] = []
    if subject.vendor_id and subject.vendor_known:
        attrs["vendor"] = _ref("Vendor", subject.vendor_id)
        out.append(
            {
                "uid": {"type": "Vendor", "id": subject.vendor_id},
                "parents": [],
                "attrs": {
                    "status": subject.vendor_status,
                    "assessment_until": subject.assessment_until,
                },
            }
        )
    me = _ref("Account", subject.account_id)
    out.append(
        {"uid": {"type": "Account", "id": subject.account_id}, "parents": [], "attrs": attrs}
    )
    for g in subject.grants:
        out.append(
            {
                "uid": {"type": "Grant", "id": g.grant_id},
                "parents": [],
                "attrs": {
                    "holder": me,
                    "status": g.status,
                    "cluster": g.cluster,
                    "fields": sorted(g.fields),
                    "all_fields": g.all_fields,
                    "actions": sorted(g.actions),
                    "max_rows": g.max_rows,
                    "valid_from": g.valid_from,
                    "valid_to": g.valid_to,
                    "purpose": g.purpose,
                },
            }
        )
    for b in subject.breakglass:
        out.append(
            {
                "uid": {"type": "BreakGlass", "id": b.session_id},
                "parents": [],
                "attrs": {
                    "holder": me,
                    "status": b.status,
                    "starts": b.starts,
                    "ends": b.ends,
                    "patient": b.patient,
                    "cluster": b.cluster,
                    "max_rows": breakglass_rows,
                },
            }
        )
    return out


@dataclass(frozen=True)
class CedarVerdict:
    #: the candidates Cedar allowed ("grant:<id>", "breakglass:<id>" or "none"), in order
    allowed: tuple[str, ...]
    #: @ids of the permit policies that allowed a candidate
    permits: tuple[str, ...]
    #: @ids of the forbid policies that fired
    forbids: tuple[str, ...]
    errors: tuple[str, ...]


def evaluate(
    store: PolicyStore,
    subject: Subject,
    *,
    action: str,
    context: dict[str, Any],
    breakglass_rows: int,
) -> CedarVerdict:
    if subject.cedar_entities is None:
        subject.cedar_entities = cedarpy.Entities.from_json_str(
            json.dumps(entities_json(subject, breakglass_rows))
        )
    candidates: list[tuple[str, dict[str, Any]]] = [("none", context)]
    for g in subject.grants:
        candidates.append((f"grant:{g.grant_id}", {**context, "grant": _ref("Grant", g.grant_id)}))
    for b in subject.breakglass:
        candidates.append(
            (
                f"breakglass:{b.session_id}",
                {**context, "breakglass": _ref("BreakGlass", b.session_id)},
            )
        )
    requests = [
        {
            "principal": {"type": "Account", "id": subject.account_id},
            "action": {"type": "Action", "id": action},
            "resource": {"type": "Records", "id": "target"},
            "context": ctx,
        }
        for _, ctx in candidates
    ]
    results = cedarpy.is_authorized_batch(requests, store.policy_set, subject.cedar_entities)
    forbids: set[str] = set()
    permits: list[str] = []
    errors: list[str] = []
    allowed: list[str] = []
    for (name, _), res in zip(candidates, results, strict=True):
        names = res.diagnostics.id_annotations_by_reason
        errors.extend(str(e) for e in res.diagnostics.errors)
        if res.allowed:
            allowed.append(name)
        for generated in res.diagnostics.reasons:
            pid = names.get(generated, generated)
            policy = store.policies.get(pid)
            if policy is not None and policy.effect == "forbid":
                forbids.add(pid)
            elif res.allowed and pid not in permits:
                permits.append(pid)
    return CedarVerdict(tuple(allowed), tuple(permits), tuple(sorted(forbids)), tuple(errors))
