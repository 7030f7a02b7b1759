"""The verdict logic: tolerance boundaries, non-finite values, shapes first, the kink excuse."""

import numpy as np
import pytest

from parity.compare.consequences import Blame, settle
from parity.compare.diff import compare_traces
from parity.compare.phase_findings import findings_for
from parity.numpy_side.trace import Trace
from parity.settings.tolerances import TOLERANCES

TOL = TOLERANCES["float64"]


def trace(n=3, z=None, dW=None):
    z = np.array([[0.5, -0.5]] * n) if z is None else z
    return Trace(
        pred=np.ones((n, 1)), loss=np.ones(n),
        grads={"W1": np.ones((n, 1, 2)) if dW is None else dW, "b1": np.ones((n, 2))},
        dx=np.ones((n, 1)), z={1: z},
    )


def compare(ours, theirs):
    return compare_traces("probe", np.arange(len(ours.loss)), ours, theirs, TOL, relu_layers=[1])


def findings(result):
    """The phase's findings as a run reports them: merged, their causes named, said in words."""
    return settle(findings_for(result), result.phase, Blame(), TOL, 1, set())


def codes(result):
    return [f.code for f in findings(result)]


def test_identical_traces_pass_with_no_findings():
    result = compare(trace(), trace())
    assert list(result.verdicts) == ["pass"] * 3
    assert codes(result) == []


def test_difference_just_inside_tolerance_passes_and_just_outside_fails():
    inside, outside = trace(), trace()
    limit = TOL.atol + TOL.rtol * 1.0
    inside.grads["W1"][1, 0, 0] += 0.9 * limit
    outside.grads["W1"][1, 0, 0] += 2 * limit
    assert list(compare(inside, trace()).verdicts) == ["pass"] * 3
    result = compare(outside, trace())
    assert list(result.verdicts) == ["pass", "fail", "pass"]
    [finding] = findings(result)
    assert (finding.code, finding.param, finding.sample) == ("gradient_mismatch", "dW1", 1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_never_pass_even_when_equal_on_both_sides(bad):
    ours, theirs = trace(), trace()
    ours.loss[2] = theirs.loss[2] = bad
    result = compare(ours, theirs)
    assert result.verdicts[2] == "fail"
    assert codes(result) == ["nan"]
    assert findings(result)[0].sample == 2


def test_shape_mismatch_is_a_finding_not_a_broadcast_and_names_a_transpose():
    ours = trace(dW=np.ones((3, 2, 1)))
    result = compare(ours, trace())
    assert list(result.verdicts) == ["fail"] * 3
    [finding] = findings(result)
    assert finding.code == "shape_mismatch" and finding.param == "dW1"
    assert finding.message == "probe: dW1 has shape (2, 1) where Keras's has shape (1, 2) (transposed?)"


def test_mask_mismatch_away_from_the_kink_fails():
    ours = trace(z=np.array([[0.5, -0.5], [0.5, 0.5], [0.5, -0.5]]))
    result = compare(ours, trace())
    assert result.verdicts[1] == "fail"
    [mask] = [f for f in findings(result) if f.code == "mask_mismatch"]
    assert mask.layer_number == 1 and mask.message.endswith("first at sample 1, unit 1")  # as a map's names its cell


def test_mask_flip_within_rounding_of_zero_is_a_kink_warning_not_a_failure():
    theirs = trace(z=np.array([[0.5, -1e-13], [0.5, -0.5], [0.5, -0.5]]))
    ours = trace(z=np.array([[0.5, 1e-13], [0.5, -0.5], [0.5, -0.5]]))
    ours.grads["b1"][0, 1] = 0.0  # the unit passes gradient on one side only
    result = compare(ours, theirs)
    assert list(result.verdicts) == ["kink", "pass", "pass"]
    assert codes(result) == ["kink"]
    assert findings(result)[0].severity == "warning"


def test_a_kink_flip_excuses_only_what_it_explains_and_a_wrong_loss_on_that_row_still_fails():
    theirs = trace(z=np.array([[0.5, -1e-13], [0.5, -0.5], [0.5, -0.5]]))
    ours = trace(z=np.array([[0.5, 1e-13], [0.5, -0.5], [0.5, -0.5]]))
    ours.grads["b1"][0, 1] = 0.0  # explained by the flip: the unit passes gradient on one side only
    ours.loss[0] += 4.0  # not explained by any mask
    result = compare(ours, theirs)
    assert list(result.verdicts) == ["fail", "pass", "pass"]
    found = {f.code: f for f in findings(result)}
    assert set(found) == {"forward_mismatch", "kink"}  # no gradient_mismatch on db1, no mask_mismatch
    assert (found["forward_mismatch"].param, found["forward_mismatch"].sample) == ("loss", 0)


def test_a_kink_flip_does_not_excuse_a_gradient_of_a_later_layer():
    theirs = trace(z=np.array([[0.5, -1e-13], [0.5, -0.5], [0.5, -0.5]]))
    ours = trace(z=np.array([[0.5, 1e-13], [0.5, -0.5], [0.5, -0.5]]))
    theirs.grads["W2"] = np.ones((3, 2, 1))
    ours.grads["W2"] = np.ones((3, 2, 1))
    ours.grads["W2"][0, 0, 0] = 3.0  # layer 2's kernel gradient: the flip in layer 1 does not reach it
    result = compare(ours, theirs)
    assert result.verdicts[0] == "fail"
    assert [(f.code, f.param) for f in findings(result) if f.severity == "error"] == [
        ("gradient_mismatch", "dW2")]


# A convolution followed by a ReLU: its map (FN=2 filters of 2x2 cells) is judged by the Dense units' rule, cell by cell.
MAP = (2, 2, 2)


def conv_trace(maps: np.ndarray) -> Trace:
    n = len(maps)
    return Trace(pred=np.ones((n, 1)), loss=np.ones(n), grads={"W1": np.ones((n, 2, 1, 1, 1)), "b1": np.ones((n, 2))},
                 dx=np.ones((n, 4)), z={}, maps={1: maps})


def compare_maps(ours: Trace, theirs: Trace):
    return compare_traces("probe", np.arange(len(ours.loss)), ours, theirs, TOL, relu_layers=[], relu_maps={1: MAP})


def test_a_conv_maps_mask_flip_away_from_the_kink_is_a_mask_mismatch_naming_its_filter_row_and_col():
    theirs = conv_trace(np.full((3, 8), 0.5))
    ours = conv_trace(np.full((3, 8), 0.5))
    ours.maps[1][1, 5] = -0.5  # sample 1: filter 1, row 0, col 1 (channel-major: 1 * 4 + 0 * 2 + 1)
    result = compare_maps(ours, theirs)
    assert list(result.verdicts) == ["pass", "fail", "pass"]
    [mask] = [f for f in findings(result) if f.code == "mask_mismatch"]
    assert (mask.sample, mask.count, mask.layer_number) == (1, 1, None)
    assert mask.details == {"convolution": 1, "map_cell": {"filter": 1, "row": 0, "col": 1}}
    assert mask.message == ("probe: convolution 1's dead-ReLU mask differs on 1 sample away from the kink, first at "
                            "sample 1, filter 1 (row 0, col 1)")


def test_a_conv_maps_mask_flip_within_rounding_of_zero_is_a_kink_as_a_dense_units_is():
    theirs = conv_trace(np.full((3, 8), 0.5))
    ours = conv_trace(np.full((3, 8), 0.5))
    theirs.maps[1][0, 6], ours.maps[1][0, 6] = -1e-13, 1e-13  # filter 1, row 1, col 0: either side of 0 by rounding
    ours.grads["b1"][0, 1] = 0.0  # that filter's bias gradient: what the flip there explains
    result = compare_maps(ours, theirs)
    assert list(result.verdicts) == ["kink", "pass", "pass"]
    assert codes(result) == ["kink"]
