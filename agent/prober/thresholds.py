"""The success/failure threshold counting of kubelet's probe worker; pure."""
from __future__ import annotations

from dataclasses import dataclass

from agent.prober.spec import Result


@dataclass
class ThresholdCounter:
    success_threshold: int
    failure_threshold: int
    last: Result | None = None
    run: int = 0

    def observe(self, result: Result) -> Result | None:
        """Counts one probe result; returns the result to publish once its run reaches the
        threshold (and on every result after that while the run lasts), else None."""
        if result == self.last:
            self.run += 1
        else:
            self.last, self.run = result, 1
        if result == Result.FAILURE and self.run < self.failure_threshold:
            return None
        if result == Result.SUCCESS and self.run < self.success_threshold:
            return None
        return result

    def reset(self) -> None:
        self.last, self.run = None, 0
