"""Screening a round's probes by the model (farm.tuning.screening): which candidates may be
drawn again, which draws are built, and what the round records. The loop with screening on
doubles is in test_tuner.py; with real Halide and Ray in test_autotune.py."""

from dataclasses import replace

import pytest

from farm.candidate import COMPILE_ERROR, OK, BuildResult, Schedule
from farm.errors import MissingPrerequisite
from farm.model import weights
from farm.search.plans import CampaignPlan, RoundPlan
from farm.store.records import RoundRecord
from farm.testing import fake_featurization
from farm.tuning.screening import screen


def _plan(spec_for, batch=8, provisional=None):
    base = spec_for("median3x3")
    return RoundPlan("abcd", 3, base, batch, start_weights=weights.baseline(),
                     provisional=provisional)


def test_only_the_accepted_weights_random_probes_are_screenable(spec_for):
    plan = _plan(spec_for, batch=32)
    screenable = [i for i in range(32) if plan.screenable(i)]
    specs = plan.specs()
    assert screenable and all(specs[i].planner == "b1-d1@accepted" for i in screenable)
    others = [s.planner for i, s in enumerate(specs) if i not in screenable]
    # beam search, the small beams near the optimum and the start weights' probes stay
    assert sorted(set(others)) == ["b1-d1@start", "b32-d100@accepted", "b4-d10@accepted"]
    assert len(screenable) == 32 - 1 - 4 - 8
    with_provisional = _plan(spec_for, batch=32, provisional=weights.baseline())
    assert not with_provisional.screenable(1)


def test_a_screened_pick_is_built_first_at_its_draw_and_redrawn_from_there(spec_for):
    """A slot's draws for screening are those a duplicate would be redrawn with; a pick
    is built as that draw (its row's seed and attempts rebuild it), and a duplicate of it
    is redrawn from there on."""
    plan = _plan(spec_for)
    assert [plan.alternative(2, d) for d in range(4)] == [plan.spec(2, a) for a in (1, 2, 3, 4)]
    assert plan.alternative(2, 2).planner == "b1-d1@accepted~noise"  # noise from draw 3
    pick = plan.alternative(5, 3)  # another slot's fourth draw
    screened = replace(plan, screened=((2, pick.seed, 4),))
    assert screened.first_attempt(2) == 4 and screened.first_attempt(5) == 1
    assert screened.spec(2, 4) == pick  # the same spec, whichever slot drew it
    assert screened.redraw(2, 4) == plan.spec(2, 5)
    assert screened.spec(5) == plan.spec(5)


def _draw(results_for):
    asked = []

    def draw(specs):
        asked.extend(specs)
        return [results_for(s) for s in specs]

    return draw, asked


def _ok(spec, features=None):
    return BuildResult(OK, schedule=Schedule("", features or fake_featurization(spec.seed),
                                             0.5))


def test_the_fastest_predicted_distinct_draws_are_built(spec_for, baseline):
    plan = CampaignPlan([_plan(spec_for)])
    slots = [i for i in range(8) if plan.parts[0].screenable(i)]
    twin = fake_featurization(1)
    # the cheapest two predictions repeat one schedule: only one of them is built
    cheap = {plan.parts[0].alternative(slots[0], 1).seed,
             plan.parts[0].alternative(slots[1], 2).seed}
    failed = plan.parts[0].alternative(slots[0], 0).seed

    def result(spec):
        if spec.seed == failed:
            return BuildResult(COMPILE_ERROR, error="compile (autoschedule): boom")
        return _ok(spec, twin if spec.seed in cheap else None)

    def predict(w, feats, cores):
        assert w is baseline and cores == plan.parts[0].base.parallelism
        return [0.0 if f == twin else float(f[0] + 1) for f in feats]

    draw, asked = _draw(result)
    screened, record = screen(plan, 3, [""], baseline, plan.parts[0].base.parallelism, draw,
                              predict)
    assert len(asked) == 3 * len(slots) == record.drawn
    picks = screened.parts[0].screened
    chosen = {i: s for i, s, _ in picks}
    assert sorted(chosen) == slots and record.kept == len(slots)
    predicted = {r.seed: r.predicted for r in record.candidates}
    picked = sorted(chosen.values(), key=lambda s: predicted[s])
    assert predicted[picked[0]] == 0.0 and len(cheap & set(picked)) == 1
    rest = [p for s, p in predicted.items() if s not in chosen.values() and p is not None]
    assert max(predicted[s] for s in picked[1:]) <= min(p for p in rest if p > 0)
    bad = next(r for r in record.candidates if r.seed == failed)
    assert bad.predicted is None and not bad.kept and "boom" in bad.error
    for index, seed, attempt in picks:  # each slot builds its pick at its draw
        assert screened.spec(index, attempt).seed == seed
        assert screened.first_attempt(index) == attempt
    assert record.autoschedule_s == pytest.approx(0.5 * (len(asked) - 1))


def test_a_model_that_cannot_predict_leaves_the_round_as_drawn(spec_for, baseline):
    plan = CampaignPlan([_plan(spec_for)])

    def predict(w, feats, cores):
        raise MissingPrerequisite("the cost model would not load")

    draw, _ = _draw(_ok)
    screened, record = screen(plan, 2, [""], baseline, 16, draw, predict)
    assert screened.specs() == plan.specs() and record.kept == 0
    assert all("would not load" in r.error for r in record.candidates)


def test_a_round_record_keeps_its_screening(spec_for, baseline):
    plan = CampaignPlan([_plan(spec_for)])
    draw, _ = _draw(_ok)
    _, record = screen(plan, 2, [""], baseline, 16, draw,
                       lambda w, feats, cores: [float(f[0]) for f in feats])
    rr = RoundRecord(round=3, screening=record)
    again = RoundRecord.from_json(rr.to_json())
    assert again.screening == record
    assert "screening" not in RoundRecord(round=3).to_json()  # a round that did not screen


def test_a_draw_whose_schedule_the_run_has_is_never_picked(spec_for, baseline):
    from farm.model.featurization import schedule_key
    from farm.search.plans import SeenSchedules

    plan = CampaignPlan([_plan(spec_for)])
    part = plan.parts[0]
    slots = [i for i in range(8) if part.screenable(i)]
    cheapest = part.alternative(slots[0], 1)
    seen = SeenSchedules()  # a row of an earlier round has the cheapest draw's schedule
    seen.claim(part.claim_key(slots[0], schedule_key(fake_featurization(cheapest.seed))), 1)
    draw, _ = _draw(_ok)
    screened, record = screen(
        plan, 2, [""], baseline, 16, draw,
        lambda w, feats, cores: [-1.0 if f == fake_featurization(cheapest.seed) else
                                 float(f[0]) for f in feats],
        held=lambda keys: [seen.holds(k) for k in keys])
    assert cheapest.seed not in {s for _, s, _ in screened.parts[0].screened}
    held = next(r for r in record.candidates if r.seed == cheapest.seed)
    assert not held.kept and held.predicted is None and "has this schedule" in held.error
    assert record.kept == len(slots)
