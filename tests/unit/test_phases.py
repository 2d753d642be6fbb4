"""The phase machine allows the experiment's order and refuses misuse without changing state."""

from __future__ import annotations

import pytest

from chaos.errors import ExperimentMisuse
from chaos.phases import Event, Phase, PhaseMachine


def test_the_normal_path_reaches_finished() -> None:
    machine = PhaseMachine()
    for event in (
        Event.BASELINE,
        Event.INJECT,
        Event.OBSERVE,
        Event.INJECT,
        Event.REVERT,
        Event.RECOVER,
        Event.VERIFY,
        Event.FINISH,
    ):
        machine.advance(event)
    assert machine.phase is Phase.FINISHED


@pytest.mark.parametrize(
    ("events", "bad", "message"),
    [
        ((), Event.INJECT, "cannot inject while the experiment is ready"),
        ((Event.BASELINE,), Event.RECOVER, "after the `with experiment.inject"),
        (
            (Event.BASELINE, Event.INJECT),
            Event.RECOVER,
            "cannot recover while the experiment is injected",
        ),
        ((Event.BASELINE, Event.INJECT, Event.REVERT), Event.INJECT, "one fault window"),
        ((Event.FINISH,), Event.FINISH, "already finished"),
    ],
)
def test_misuse_raises_and_leaves_the_state_unchanged(events, bad, message) -> None:
    machine = PhaseMachine()
    for event in events:
        machine.advance(event)
    before = machine.phase
    with pytest.raises(ExperimentMisuse, match=message):
        machine.advance(bad)
    assert machine.phase is before


def test_every_phase_can_finish_once() -> None:
    for phase in Phase:
        machine = PhaseMachine()
        machine.phase = phase
        assert machine.can(Event.FINISH) is (phase is not Phase.FINISHED)
