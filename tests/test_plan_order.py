"""Task start order: a map phase's largest inputs first; output never depends on it
(test_pipeline_e2e checks 1 vs 2 workers byte for byte, which now start tasks in this
order on inputs of different sizes)."""

from __future__ import annotations

from pipelines.plan import InputFile, Phase, Plan


def _plan(sizes: list[int]) -> Plan:
    inputs = [InputFile(f"/in/{i}", f"{i}", s) for i, s in enumerate(sizes)]
    phases = [Phase("main", "map", len(sizes), ["a"], final=False, collect="g"),
              Phase("g.buckets", "step", 3, ["g"], final=False, step="buckets"),
              Phase("apply-g", "map", len(sizes), ["g"], source="main")]
    return Plan(phases, inputs)


def test_map_tasks_start_largest_first_ties_by_id():
    plan = _plan([10, 50, 20, 50, 5])
    assert plan.largest_first(plan.phases[0], [0, 1, 2, 3, 4]) == [1, 3, 2, 0, 4]
    assert plan.largest_first(plan.phases[2], [0, 2, 4]) == [2, 0, 4]  # only the undone


def test_step_tasks_keep_their_order():
    plan = _plan([10, 50, 20])
    assert plan.largest_first(plan.phases[1], [2, 0, 1]) == [2, 0, 1]
