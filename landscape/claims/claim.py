"""One judged claim: a hypothesis for one comparison, its quantity, both intervals and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from landscape.stats import Interval, LinkTest


@dataclass(frozen=True)
class Claim:
    """One hypothesis for one comparison: its quantity, both intervals and the verdict."""

    name: str
    hypothesis: str
    quantity: str
    group: str
    baseline: str
    kind: str
    paired: Interval | None
    seed_level: Interval | None
    verdict: str
    basis: str
    margin: float = 0.0
    note: str = ""
    test: LinkTest | None = None  # the link claims' seed-permutation test (they have no interval)
    n_seeds: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The claim as a plain dict, intervals and test as dicts too (inverse of :meth:`from_dict`)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["paired"] = None if self.paired is None else self.paired.to_dict()
        d["seed_level"] = None if self.seed_level is None else self.seed_level.to_dict()
        d["test"] = None if self.test is None else self.test.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Claim:
        """The claim ``d`` holds (inverse of :meth:`to_dict`)."""
        d = dict(d)
        d["paired"] = Interval.from_dict(d.get("paired"))
        d["seed_level"] = Interval.from_dict(d.get("seed_level"))
        d["test"] = LinkTest.from_dict(d.get("test"))
        return cls(**d)
