"""Detectors built from other detectors: TCPDBench's default binseg as a grid member, and a
vote that keeps the change points a quorum of its members agree on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.changepoints.binseg import BINSEG_MAX_CPS, binseg_default
from timbel_dagster.ml.changepoints.noise import as_array
from timbel_dagster.ml.changepoints.tcpd_metrics import MARGIN

if TYPE_CHECKING:
    from timbel_dagster.ml.changepoints.detect import Rule


@dataclass(frozen=True)
class Binseg:
    """TCPDBench's default binary segmentation (`binseg.py`) as a detector."""

    @property
    def label(self) -> str:
        return "binseg-default"

    @property
    def min_segment(self) -> int:
        return 2  # ruptures' min_size in `binseg_default`

    @property
    def max_changes(self) -> int:
        return BINSEG_MAX_CPS

    def detect(self, values: Any) -> list[int]:
        return binseg_default(as_array(values))


@dataclass(frozen=True)
class Vote:
    """The change points that at least `quorum` of `members` report within `margin`.

    Members are asked in order; a point of an earlier member wins the location, and the
    points of other members it stands for are not counted again. A vote can only report
    fewer changes than its members together: it trades recall for precision.
    """

    members: tuple[Rule | Binseg, ...]
    quorum: int = 2
    margin: int = MARGIN

    def __post_init__(self) -> None:
        if not 1 <= self.quorum <= len(self.members):
            raise ValueError("quorum must be between 1 and the number of members")

    @property
    def min_segment(self) -> int:
        """The fewest observations in a segment that every member can report."""
        return max(member.min_segment for member in self.members)

    @property
    def max_changes(self) -> int:
        """A bound on the changes reported: any `quorum` members include one of the
        len - quorum + 1 members with the lowest caps, so each kept point uses one of theirs."""
        caps = sorted(member.max_changes for member in self.members)
        return sum(caps[: len(caps) - self.quorum + 1])

    @property
    def label(self) -> str:
        names = ", ".join(m.label for m in self.members)
        return f"vote{self.quorum}of{len(self.members)}({names})"

    def detect(self, values: Any) -> list[int]:
        found = [sorted(member.detect(values)) for member in self.members]
        used: list[set[int]] = [set() for _ in found]
        kept = []
        for i, points in enumerate(found):
            for point in points:
                if point in used[i]:
                    continue
                near = [
                    min(
                        (q for q in other if q not in used[j] and abs(q - point) <= self.margin),
                        key=lambda q: abs(q - point),
                        default=None,
                    )
                    for j, other in enumerate(found)
                ]
                if sum(q is not None for q in near) >= self.quorum:
                    kept.append(point)
                    for j, q in enumerate(near):
                        if q is not None:
                            used[j].add(q)
        return sorted(set(kept))
