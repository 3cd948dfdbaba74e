"""The patient's own "was my data in a leak?" answer, from the leak scanner's records."""

from __future__ import annotations

from dataclasses import dataclass, field

from phiguard.app import App


@dataclass(frozen=True)
class LeakAnswer:
    available: bool
    affected: bool
    incidents: list[dict[str, object]] = field(default_factory=list)


def leak_check(app: App, patient_id: str, *, actor: str) -> LeakAnswer:
    try:
        from phiguard.leaks.check import patient_check
    except ImportError:
        return LeakAnswer(available=False, affected=False)
    result = patient_check(app, patient_id, actor=actor)
    found = [
        dict(i) | {"summary": f"Found on {i.get('found_on', '')}"}
        for i in result.get("incidents", [])
    ]
    return LeakAnswer(available=True, affected=bool(result.get("affected")), incidents=found)
