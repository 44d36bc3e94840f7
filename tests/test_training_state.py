"""The training-state file's schema: a state missing an entry, or holding one of the wrong type, is refused in one
line that names the entry (anomaly.engine.training_state)."""

import pytest

from anomaly.engine.training_state import FORMAT, SCHEMA, check_training_state, random_states
from anomaly.errors import InputError


def complete_state():
    return {
        "format": FORMAT, "run": {}, "step": 3, "model": {}, "optimizer": {}, "batches": {},
        "random": random_states(), "history": [], "score_header": "", "initial_value": 0.5, "elapsed": 1.0,
        "losses": [1.0, 0.9, 0.8], "kernels": {},
    }  # fmt: skip


def test_the_helper_state_is_complete():
    assert set(complete_state()) == set(SCHEMA)
    assert check_training_state(complete_state(), "x.state")["step"] == 3


@pytest.mark.parametrize("entry", [name for name in SCHEMA if name not in ("losses", "kernels")])
def test_a_missing_entry_is_named(entry):
    state = complete_state()
    del state[entry]
    with pytest.raises(InputError) as error:
        check_training_state(state, "run.state")
    message = str(error.value)
    assert message.startswith("run.state: ") and f"'{entry}' is missing" in message and "\n" not in message


@pytest.mark.parametrize("entry, value", [("step", "3"), ("step", True), ("history", {}), ("elapsed", "1 s"),
                                          ("random", [])])
def test_an_entry_of_the_wrong_type_is_named(entry, value):
    state = complete_state()
    state[entry] = value
    with pytest.raises(InputError, match=f"the entry '{entry}' is a {type(value).__name__}"):
        check_training_state(state, "run.state")


def test_a_random_generator_entry_is_checked_too():
    state = complete_state()
    state["random"]["torch"] = [1, 2, 3]
    with pytest.raises(InputError, match="the entry 'random.torch' is a list, expected a Tensor"):
        check_training_state(state, "run.state")


def test_entries_added_later_are_completed_for_older_states():
    state = complete_state()
    del state["losses"], state["kernels"]
    checked = check_training_state(state, "old.state")
    assert len(checked["losses"]) == 3 and all(loss != loss for loss in checked["losses"])  # unknown: NaN
    assert checked["kernels"] == {}


def test_another_format_tag_is_refused():
    state = complete_state()
    state["format"] = "something-else"
    with pytest.raises(InputError, match="not a training state of this project"):
        check_training_state(state, "run.state")
