"""What a picture says about one counterfactual: the pair, the classifier before → after, whether it flipped.

Pure text: ``grid.png``, the W&B panels and the step videos draw these lines; the colours mark the status.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from ldce.results.record import Record

FLIPPED, NOT_FLIPPED, ALREADY_TARGET = "flipped", "NOT flipped", "already target"
"""The statuses in the words ``report.html`` uses (``NOT`` in capitals, to stand out in a picture)."""
STATUS_IDS = {FLIPPED: "flipped", NOT_FLIPPED: "not_flipped", ALREADY_TARGET: "already_target"}
"""Each status as an identifier (report filters, CSS classes)."""
STATUS_COLOURS = {FLIPPED: "#1a7f37", NOT_FLIPPED: "#cf222e", ALREADY_TARGET: "#9a6700"}
"""Green, red, amber: the caption's first line and (for the last two) the row's frame."""


@dataclass(frozen=True)
class Outcome:
    """One counterfactual as pictures show it.

    source / target: the pair's class names (or indices as text); before / after: the class the
    classifier predicts on the original and on the counterfactual, with their probabilities
    before_confidence / after_confidence in [0, 1]; target_confidence: ``p(target | x_cf)`` in [0, 1];
    flipped: the classifier now predicts the target; already_target: it did so on the original too;
    region_share: share of pixels allowed to change, in [0, 1] (``None``: no region); key: the input's
    key, shown shortened (``None``: not shown).
    """

    source: str
    target: str
    before: str
    before_confidence: float | None
    after: str
    after_confidence: float | None
    target_confidence: float
    flipped: bool
    already_target: bool = False
    region_share: float | None = None
    key: str | None = None

    @classmethod
    def of_record(cls, r: Record) -> Outcome:
        """A done record's outcome (names where the record has them, else class indices)."""
        return cls(
            source=_named(r.source_name, r.source),
            target=_named(r.target_name, r.target),
            before=_named(r.source_prediction_name, r.source_prediction),
            before_confidence=r.source_confidence,
            after=_named(r.prediction_name, r.prediction),
            after_confidence=r.confidence,
            target_confidence=r.target_confidence,
            flipped=bool(r.flipped),
            already_target=bool(r.already_target),
            region_share=r.region_share,
            key=r.key,
        )

    @property
    def status(self) -> str:
        """:data:`ALREADY_TARGET`, :data:`FLIPPED` or :data:`NOT_FLIPPED` (:func:`status_of`)."""
        return status_of(self.already_target, self.flipped)

    def lines(self) -> list[str]:
        """``s003 · Dress → Coat: NOT flipped`` / ``classifier: Dress (p 0.91) → Shirt (p 0.55)`` /
        ``p(target) 0.24, region 25%`` (no key part without a key)."""
        before, after = _with_p(self.before, self.before_confidence), _with_p(self.after, self.after_confidence)
        share = "" if self.region_share is None else f", region {self.region_share:.0%}"
        key = "" if self.key is None else f"{short_key(self.key)} · "
        return [
            f"{key}{self.source} → {self.target}: {self.status}",
            f"classifier: {before} → {after}",
            f"p(target) {self.target_confidence:.2f}{share}",
        ]


def short_key(key: str, most: int = 24) -> str:
    """``key``, or its last ``most − 1`` characters after ``…`` (a file name's end tells the most)."""
    return key if len(key) <= most else "…" + key[-(most - 1) :]


def _named(name: str | None, index: int | None) -> str:
    return name if name is not None else "?" if index is None else str(index)


def _with_p(name: str, p: float | None) -> str:
    return name if p is None else f"{name} (p {p:.2f})"


def wrapped(lines: list[str], width: int) -> list[str]:
    """Each line broken into lines of at most ``width`` characters (long words split), in order."""
    return [part for line in lines for part in textwrap.wrap(line, max(1, width), break_long_words=True) or [""]]


def status_of(already_target: bool, flipped: bool) -> str:
    """An explained input's status, the one rule: :data:`ALREADY_TARGET` when the classifier called the
    original the target (nothing to flip, whatever it calls the counterfactual), else :data:`FLIPPED` when
    it calls the counterfactual the target, else :data:`NOT_FLIPPED`."""
    if already_target:
        return ALREADY_TARGET
    return FLIPPED if flipped else NOT_FLIPPED
