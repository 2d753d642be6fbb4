"""The experiment's phase machine: a pure transition table, so misuse is caught before any I/O.

Like h11: an illegal event raises ExperimentMisuse and leaves the state unchanged.
"""

from __future__ import annotations

from enum import Enum

from chaos.errors import ExperimentMisuse


class Phase(Enum):
    READY = "ready"  # nothing measured yet
    BASELINE = "baseline"  # steady state verified, probes running
    INJECTED = "injected"  # at least one fault active
    REVERTED = "reverted"  # every fault reverted, recovery not yet checked
    RECOVERED = "recovered"  # steady state is back
    FINISHED = "finished"  # probes stopped, record made


class Event(Enum):
    BASELINE = "baseline"
    INJECT = "inject"
    OBSERVE = "observe"
    REVERT = "revert"
    RECOVER = "recover"
    VERIFY = "verify"
    FINISH = "finish"


_TRANSITIONS: dict[tuple[Phase, Event], Phase] = {
    (Phase.READY, Event.BASELINE): Phase.BASELINE,
    (Phase.BASELINE, Event.INJECT): Phase.INJECTED,
    (Phase.INJECTED, Event.INJECT): Phase.INJECTED,  # nested or simultaneous faults
    (Phase.INJECTED, Event.OBSERVE): Phase.INJECTED,
    (Phase.BASELINE, Event.OBSERVE): Phase.BASELINE,  # observing steady state is allowed
    (Phase.INJECTED, Event.REVERT): Phase.REVERTED,
    (Phase.REVERTED, Event.OBSERVE): Phase.REVERTED,
    (Phase.REVERTED, Event.RECOVER): Phase.RECOVERED,
    (Phase.RECOVERED, Event.VERIFY): Phase.RECOVERED,
    (Phase.BASELINE, Event.VERIFY): Phase.BASELINE,
    **{(phase, Event.FINISH): Phase.FINISHED for phase in Phase if phase is not Phase.FINISHED},
}

_HINTS: dict[Event, str] = {
    Event.INJECT: "inject faults after the baseline and before recover(); one fault window per experiment",
    Event.OBSERVE: "call observe() inside `with experiment.inject(...)` (or before injecting)",
    Event.REVERT: "faults are reverted by leaving the `with experiment.inject(...)` block",
    Event.RECOVER: "call recover() after the `with experiment.inject(...)` block has ended",
    Event.VERIFY: "call verify() after recover() (or before injecting)",
    Event.BASELINE: "the baseline is taken once, before the first fault",
    Event.FINISH: "the experiment is already finished",
}


class PhaseMachine:
    """Current phase plus the only way to change it."""

    def __init__(self) -> None:
        self.phase = Phase.READY

    def can(self, event: Event) -> bool:
        return (self.phase, event) in _TRANSITIONS

    def advance(self, event: Event) -> Phase:
        """Move to the next phase or raise ExperimentMisuse naming the rule broken."""
        try:
            self.phase = _TRANSITIONS[(self.phase, event)]
        except KeyError:
            raise ExperimentMisuse(
                f"cannot {event.value} while the experiment is {self.phase.value}: {_HINTS[event]}"
            ) from None
        return self.phase
