"""The one check of a choice or a range: every refusal says what must hold, what was found and, where it helps,
how to fix it, in one line."""

import math

import numpy as np
import pytest

from anomaly.errors import InputError, check_choice, check_range


def refusal(check, *args, **kwargs) -> str:
    with pytest.raises(InputError) as refused:
        check(*args, **kwargs)
    assert "\n" not in str(refused.value)
    return str(refused.value)


def test_an_allowed_choice_is_returned_unchanged():
    assert check_choice("bf16", ("fp32", "tf32", "bf16"), "--precision") == "bf16"
    assert check_choice(5, (10, 5, 1), "--num_crops") == 5


def test_a_choice_not_allowed_names_what_was_found_and_the_choices():
    assert refusal(check_choice, "fp16", ("fp32", "bf16"), "--precision") == (
        "--precision must be one of fp32, bf16, not 'fp16'")
    assert refusal(check_choice, True, (1, 0), "flag") == "flag must be one of 1, 0, not True"


def test_a_refusal_names_the_file_that_holds_the_value_and_how_to_fix_it():
    assert refusal(check_choice, "x", ("AUC", "AP"), "metric", fix="edit the description", source="d.json") == (
        "d.json: metric must be one of AUC, AP, not 'x'; edit the description")


@pytest.mark.parametrize("value, bounds, message", [
    (0, dict(minimum=1, integer=True), "n must be an integer at least 1, not 0"),
    (1.5, dict(minimum=1, integer=True), "n must be an integer at least 1, not 1.5"),
    (True, dict(minimum=0, integer=True), "n must be an integer at least 0, not True"),
    (math.nan, dict(minimum=0, maximum=1), "n must be a finite number in [0, 1], not nan"),
    (math.inf, dict(), "n must be a finite number, not inf"),
    ("3", dict(minimum=0), "n must be a finite number at least 0, not '3'"),
    (1.0, dict(minimum=0, below=1), "n must be a finite number in [0, 1), not 1.0"),
    (0, dict(above=0, maximum=100), "n must be a finite number in (0, 100], not 0"),
    (0, dict(above=0), "n must be a finite number above 0, not 0"),
    (7, dict(maximum=3), "n must be a finite number at most 3, not 7"),
    (3, dict(below=3), "n must be a finite number below 3, not 3"),
])
def test_a_value_out_of_range_says_the_range_and_the_value(value, bounds, message):
    assert refusal(check_range, value, "n", **bounds) == message


def test_values_in_range_are_returned_unchanged_whatever_their_number_type():
    assert check_range(np.int64(4), "n", minimum=1, integer=True) == 4
    assert check_range(0.5, "threshold", minimum=0, maximum=1) == 0.5
    assert check_range(100, "ratio", above=0, maximum=100) == 100
