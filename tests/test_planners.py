"""A candidate's planner is a value: its label is written and parsed in one place."""

import pytest

from farm.search.planners import Planner, Role
from farm.search.plans import RoundPlan, weights_for


@pytest.mark.parametrize("label", ["b32-d100@accepted", "b1-d1@start~noise",
                                   "b32-d100@provisional", "b4-d10@accepted~noise"])
def test_a_label_reads_back_as_the_planner_that_wrote_it(label):
    assert Planner.parse(label).label == label


def test_rows_from_before_the_planner_column_were_planned_with_the_accepted_weights():
    assert Planner.parse(None).role is Role.ACCEPTED and not Planner.parse("").noise


@pytest.mark.parametrize("label", ["x", "@accepted", "b1-d1@best", "b1-d1@start~noisy",
                                   "b1-d1accepted", "b-1-d1@start"])
def test_a_label_of_no_planner_is_refused(label):
    with pytest.raises(ValueError, match="names no planner"):
        Planner.parse(label)
    with pytest.raises(ValueError):
        weights_for({"planner": label, "seed": 1, "attempts": 1}, lambda role: None)


def test_every_candidate_a_round_plans_names_its_planner(baseline, monkeypatch):
    from farm.candidate import CandidateSpec
    from farm.machine import targets
    from farm.pipelines import catalog

    base = CandidateSpec(catalog.resolve("median3x3"), targets.resolve("host"), baseline)
    plan = RoundPlan("6adb38e1", 2, base, 16, start_weights=baseline, provisional=baseline)
    planners = [Planner.parse(plan.spec(i, attempt).planner)
                for i in range(16) for attempt in (1, 5)]
    assert {p.role for p in planners} == set(Role)
    assert planners[0] == Planner(32, 100, Role.ACCEPTED)  # candidate 0: beam search
    assert any(p.noise for p in planners) and not planners[1].noise  # beam: never perturbed
