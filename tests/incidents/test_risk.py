from __future__ import annotations

import pytest

from phiguard.errors import UsageError
from phiguard.incidents import cases, risk
from tests.incidents.conftest import FIELDS


def test_seed_incident_scores_five_very_high() -> None:
    factors = risk.propose(FIELDS, publicly_posted=True, malicious=True, affected=56_000)
    a = risk.Assessment(factors)
    assert (a.dpc, a.ei, a.cb) == (4, 1.0, 1.0)
    assert a.score == 5.0 and a.band == "very high"
    assert "procedure" in factors["dpc"].rationale
    assert "identity card" in factors["ei"].rationale
    assert "unknown recipients" in factors["cb_confidentiality"].rationale


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (0.25, "low"),
        (1.99, "low"),
        (2.0, "medium"),
        (2.99, "medium"),
        (3.0, "high"),
        (3.99, "high"),
        (4.0, "very high"),
        (5.0, "very high"),
    ],
)
def test_bands_follow_enisa(score: float, band: str) -> None:
    assert risk.band(score) == band


def test_simple_data_known_recipients_is_low() -> None:
    a = risk.Assessment(
        risk.propose(["sex"], publicly_posted=False, malicious=False, known_recipients=True)
    )
    assert (a.dpc, a.ei) == (1, 0.25)
    assert a.score == 0.5 and a.band == "low"


def test_name_and_hospital_number_is_significant_ei() -> None:
    f = risk.propose(["name", "hospital_no"], publicly_posted=False, malicious=False)
    assert f["ei"].value == 0.75


def test_officer_overrules_a_factor_with_a_rationale(sqlite_hospital, cfg) -> None:
    app = sqlite_hospital.app
    iid = cases.open_from(app, actor="dpo", scan=sqlite_hospital.scan(), cfg=cfg)
    res = cases.assess(
        app, iid, "cb_malicious", 0, "contractor says it was an accident", actor="dpo"
    )
    assert res["score"] == 4.5 and res["band"] == "very high"
    assert res["factors"]["cb_malicious"]["origin"] == "edited"
    with pytest.raises(UsageError, match="one of"):
        cases.assess(app, iid, "dpc", 2.5, "between", actor="dpo")
    with pytest.raises(UsageError, match="rationale"):
        cases.assess(app, iid, "dpc", 3, "  ", actor="dpo")
    with pytest.raises(UsageError, match="unknown ENISA factor"):
        cases.assess(app, iid, "vibes", 1, "x", actor="dpo")
    # a later scan re-prefills the other factors but never the officer's decision
    cases.attach(app, iid, actor="dpo", fields=["diagnosis"])
    after = cases.summary(app, iid, cfg)["enisa"]["factors"]["cb_malicious"]
    assert after["value"] == 0 and after["origin"] == "edited"
