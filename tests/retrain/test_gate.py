"""The gate's arithmetic at its boundaries (pure: runs with ``pytest -p no:django``)."""

from retrain import gate


def block(right: int, n: int) -> dict:
    return {"accuracy": round(right / n, 4), "n": n}


def test_a_gain_exactly_at_the_required_minimum_promotes():
    # 0.95 - 0.93 is 0.019999999999999907 in floats: compared as items it is exactly 0.02.
    serving = {"overall": block(93, 100), "slices": {}}
    candidate = {"overall": block(95, 100), "slices": {}}
    decision = gate.gate_decide(serving=serving, candidate=candidate, min_gain=0.02, tolerance=0.05)
    assert decision["promote"], decision["reason"]
    assert decision["gain"] == 0.02


def test_one_item_short_of_the_minimum_does_not_promote():
    serving = {"overall": block(93, 100), "slices": {}}
    candidate = {"overall": block(94, 100), "slices": {}}
    decision = gate.gate_decide(serving=serving, candidate=candidate, min_gain=0.02, tolerance=0.05)
    assert not decision["promote"] and "below the required +0.020" in decision["reason"]


def test_a_slice_drop_exactly_at_the_tolerance_is_allowed_and_one_item_more_is_not():
    serving = {"overall": block(50, 100), "slices": {"s": block(60, 100)}}
    at_tolerance = {"overall": block(60, 100), "slices": {"s": block(55, 100)}}  # -0.05
    beyond = {"overall": block(60, 100), "slices": {"s": block(54, 100)}}  # -0.06
    assert gate.gate_decide(serving=serving, candidate=at_tolerance, min_gain=0.02, tolerance=0.05)["promote"]
    refused = gate.gate_decide(serving=serving, candidate=beyond, min_gain=0.02, tolerance=0.05)
    assert not refused["promote"] and refused["slice_changes"] == {"s": -0.06}


def test_accuracies_that_do_not_round_evenly_are_recovered_as_item_counts():
    # 2/3 and 1/3 are stored as 0.6667 and 0.3333: their rounded difference is 0.3334, the
    # items' is exactly one third.
    serving = {"overall": block(1, 3), "slices": {"s": block(2, 3)}}
    candidate = {"overall": block(2, 3), "slices": {"s": block(1, 3)}}
    decision = gate.gate_decide(serving=serving, candidate=candidate, min_gain=0.02, tolerance=0.5)
    assert decision["slice_changes"] == {"s": -0.3333} and decision["gain"] == 0.3333
