import hashlib

from farm.search.plans import MAX_ATTEMPTS, RoundPlan, SeenSchedules, schedule_id, seed_for

K1 = "ab" * 32


def test_seeds_differ_between_runs_rounds_candidates_and_attempts():
    seeds = {seed_for(run, r, i, a) for run in ("aaaa", "bbbb") for r in (1, 2)
             for i in range(8) for a in (1, 2)}
    assert len(seeds) == 2 * 2 * 8 * 2
    assert seed_for("aaaa", 1, 3, 1) == seed_for("aaaa", 1, 3, 1)  # a redone round is the same


def test_schedule_ids_are_unique_in_a_run():
    ids = {schedule_id(r, i, 12) for r in range(1, 50) for i in range(12)}
    assert len(ids) == 49 * 12 and min(ids) == 1


def test_plan_beam_first_probes_after(spec_for):
    plan = RoundPlan("abcd", 2, spec_for("median3x3"), 5)
    specs = plan.specs()
    assert (specs[0].beam_size, specs[0].random_dropout) == (32, 100)
    assert all((s.beam_size, s.random_dropout) == (1, 1) for s in specs[1:4])
    assert (specs[4].beam_size, specs[4].random_dropout) == (4, 10)  # near the optimum
    assert not plan.precheck(0) and plan.precheck(1)
    assert plan.redraw(0, 1) is None
    assert plan.redraw(3, 1).seed != specs[3].seed
    assert plan.redraw(3, MAX_ATTEMPTS) is None


def test_claims_report_the_twin(spec_for):
    seen = SeenSchedules()
    plan = RoundPlan("abcd", 1, spec_for("median3x3"), 4)
    assert seen.claim(K1, plan.owner(1)) is None
    assert seen.claim(K1, plan.owner(1)) is None  # its own claim again (a retried task)
    assert seen.claim(K1, plan.owner(2)) == schedule_id(1, 1, 4)
    # beam search repeating a probe of its own round is a duplicate too: one ok row each
    assert seen.claim(K1, plan.owner(0)) == schedule_id(1, 1, 4)
    nxt = RoundPlan("abcd", 2, spec_for("median3x3"), 4)
    assert seen.claim(K1, nxt.owner(0)) == schedule_id(1, 1, 4)  # an earlier round's


def test_seen_schedules_survive_compaction():
    seen = SeenSchedules()
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(5000)]
    for i, k in enumerate(keys):
        assert seen.claim(k, i + 1) is None
    assert len(seen) == 5000
    assert seen.claim(keys[10], 9999) == 11 and seen.claim(keys[4999], 9999) == 5000


def test_planners_say_which_weights_and_search(spec_for):
    from dataclasses import replace

    accepted = spec_for("median3x3")
    start = replace(accepted.weights, data=accepted.weights.data[:-4] + b"\0\0\0\0")
    plan = RoundPlan("abcd", 3, accepted, 32, start_weights=start)
    specs = plan.specs()
    labels = [s.planner for s in specs]
    assert labels[0] == "b32-d100@accepted" and labels[1] == "b1-d1@accepted"
    assert labels[3] == "b1-d1@start" and labels[4] == "b4-d10@accepted"
    for s in specs:  # the label tells the truth about the spec
        role = "start" if s.weights.sha256 == start.sha256 else "accepted"
        assert s.planner == f"b{s.beam_size}-d{s.random_dropout}@{role}"
    assert sum(s.planner.endswith("@start") for s in specs) == 8  # a quarter
    assert plan.redraw(3, 1).planner == "b1-d1@start"
    noisy = plan.redraw(3, 2)  # the third draw: noise on the weights
    assert noisy.planner == "b1-d1@start~noise"
    assert noisy.weights.sha256 not in (start.sha256, accepted.weights.sha256)
    assert plan.redraw(3, 3).weights.sha256 != noisy.weights.sha256


def test_provisional_weights_get_a_beam_search_of_their_own(spec_for):
    from dataclasses import replace

    accepted = spec_for("median3x3")
    other = replace(accepted.weights, data=accepted.weights.data[:-4] + b"\0\0\0\0")
    plan = RoundPlan("abcd", 3, accepted, 8, provisional=other)
    specs = plan.specs()
    assert specs[1].planner == "b32-d100@provisional" and specs[1].weights == other
    assert not plan.precheck(1) and plan.redraw(1, 1) is None


def test_a_released_schedule_can_be_claimed_again():
    seen = SeenSchedules()
    assert seen.claim(K1, 5) is None
    seen.release(K1, 4)  # not its owner: nothing happens
    assert seen.claim(K1, 6) == 5
    seen.release(K1, 5)
    assert seen.claim(K1, 6) is None and len(seen) == 1
    seen.compact()
    seen.release(K1, 6)  # from the compacted arrays too
    assert len(seen) == 0 and seen.claim(K1, 7) is None


def test_a_campaign_plan_interleaves_pipelines_and_claims_in_each_ones_scope(spec_for):
    from dataclasses import replace

    from farm.pipelines import catalog
    from farm.search.plans import CampaignPlan, scoped_key

    base = spec_for("median3x3")
    parts = [RoundPlan("run", 2, replace(base, benchmark=catalog.resolve(name)), 4,
                       scope=name) for name in ("median3x3", "sobel")]
    plan = CampaignPlan(parts)
    specs = plan.specs()
    assert [s.benchmark.name for s in specs] == ["median3x3", "sobel"] * 4
    assert [plan.group(i) for i in range(8)] == [0, 1] * 4
    assert [plan.is_beam(i) for i in range(8)] == [True, True] + [False] * 6
    # candidate 5 is sobel's candidate 2: its seed, schedule id and redraw are its plan's
    assert plan.locate(5) == (parts[1], 2)
    assert specs[5] == parts[1].spec(2) and plan.owner(5) == schedule_id(2, 2, 4)
    assert plan.redraw(5, 1) == parts[1].redraw(2, 1)
    # equal schedule features in two pipelines are two schedules, and neither is the plain key
    key = "ab" * 32
    assert plan.claim_key(0, key) != plan.claim_key(1, key)
    assert plan.claim_key(1, key) == scoped_key("sobel", key) != key
    assert RoundPlan("run", 1, base, 4).claim_key(0, key) == key  # a run of one pipeline


def test_seen_schedules_say_what_they_hold_without_claiming():
    seen = SeenSchedules()
    assert not seen.holds(K1)
    seen.claim(K1, 3)
    assert seen.holds(K1)
    seen.compact()  # the sorted arrays, as after a resume
    assert seen.holds(K1) and not seen.holds("cd" * 32)
    assert seen.claim(K1, 4) == 3  # holds() claimed nothing for itself
