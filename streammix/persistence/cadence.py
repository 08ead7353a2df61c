"""When a long job saves a checkpoint: every N steps, and never so often that saving
costs more than a small share of the run."""

from __future__ import annotations

import time

#: a save waits at least this many times its predecessor's duration: checkpoints then
#: cost at most 1 / (1 + COST_FACTOR), under 5%, of a run whatever the model's and the steps' sizes
COST_FACTOR = 20.0


class SaveCadence:
    """Decides, after each step (EM iteration, online batch), whether to save now.

    ``every``: save after every ``every`` steps. ``interval`` (seconds, or None): also
    wait until ``interval`` seconds and ``COST_FACTOR`` times the last save's duration
    have passed since that save ended (the first save waits only for ``interval``).
    None keeps the step count alone: exactly every ``every`` steps. The final save of a
    job is the caller's, whatever the cadence says."""

    def __init__(self, every: int = 1, interval: float | None = None):
        self.every = int(every)
        self.interval = None if interval is None else float(interval)
        self.steps = 0
        self.last_end = time.monotonic()
        self.last_cost = 0.0

    def step(self) -> bool:
        """Count one step; True when a save is due."""
        self.steps += 1
        if self.steps < self.every:
            return False
        if self.interval is None:
            return True
        waited = time.monotonic() - self.last_end
        return waited >= max(self.interval, COST_FACTOR * self.last_cost)

    def saved(self, started: float) -> None:
        """Record a save that began at ``started`` (time.monotonic()) and just ended."""
        self.last_end = time.monotonic()
        self.last_cost = self.last_end - started
        self.steps = 0

    def idle_due(self) -> bool:
        """When no step comes (an idle stream): whether steps wait for a save and the
        interval allows one now."""
        if self.steps == 0:
            return False
        if self.interval is None:
            return True
        waited = time.monotonic() - self.last_end
        return waited >= max(self.interval, COST_FACTOR * self.last_cost)

    def pending(self) -> bool:
        """Whether steps were taken since the last save."""
        return self.steps > 0
