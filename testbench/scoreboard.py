"""The one scoreboard of the project's benches (engine, driver, SoC).

Every comparison goes through :class:`Scoreboard`: integer words compared one by one, words
that never came (missing) and words that should not exist (surplus) counted as mismatches,
and each mismatch described by *where* (sample / sub-batch / update / slot), *which word*,
both values and the one-line command that reproduces the run.  A bench ends with
:meth:`Scoreboard.report`, and a run is clean only when ``mismatches == 0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Scoreboard", "MAX_DETAILS"]

MAX_DETAILS = 40
PER_KIND = 8  # lines kept per kind of mismatch, so that 30 surplus words cannot hide a wrong flag


@dataclass
class Scoreboard:
    """Counts compared words and mismatches; keeps the first ``max_details`` descriptions
    (at most ``per_kind`` of each kind: differing word, surplus word, missing word ...).

    ``reproduce`` — a shell command that reruns exactly this stimulus (appended to each
    mismatch line, so a line copied from a log is enough to debug it).
    """

    reproduce: str = ""
    max_details: int = MAX_DETAILS
    per_kind: int = PER_KIND
    compared: int = 0
    mismatches: int = 0
    details: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    kinds: dict = field(default_factory=dict)
    _kept: bool = False  # whether the last mismatch got a line (see annotate)

    def _record(self, where: str, word: str, got, exp, why: str = "") -> None:
        self.mismatches += 1
        kind = why or "differs"
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self._kept = len(self.details) < self.max_details and self.kinds[kind] <= self.per_kind
        if self._kept:
            rec = {"where": where, "word": word, "rtl": _plain(got), "golden": _plain(exp)}
            if why:
                rec["why"] = why
            if self.reproduce:
                rec["reproduce"] = self.reproduce
            self.records.append(rec)
            line = f"{where}: {word}: " if word else f"{where}: "  # no word: ``where`` names it
            line += f"rtl={rec['rtl']} golden={rec['golden']}"
            if why:
                line += f" ({why})"
            if self.reproduce:
                line += f" | reproduce: {self.reproduce}"
            self.details.append(line)

    def check(self, where: str, word: str, got, exp) -> bool:
        """Compare one word (integers or equal-length integer sequences); True when equal."""
        self.compared += 1
        if _plain(got) == _plain(exp):
            return True
        self._record(where, word, got, exp)
        return False

    def fail(self, where: str, word: str, got, exp, why: str) -> None:
        """A mismatch found without a one-to-one comparison (surplus word, timeout, ...)."""
        self._record(where, word, got, exp, why)

    def require(self, where: str, word: str, got, exp, why: str) -> bool:
        """A condition that must hold (the design idle, nothing in flight at the end of a run):
        a mismatch when ``got != exp``, but not a compared word of the stream."""
        if _plain(got) == _plain(exp):
            return True
        self._record(where, word, got, exp, why)
        return False

    def annotate(self, text: str) -> None:
        """An indented line explaining the last mismatch (e.g. the differing fields of a packed
        word); dropped when that mismatch got no line of its own."""
        if self._kept and len(self.details) < self.max_details:
            self.details.append(f"  {text}")

    def add_compared(self, n: int) -> None:
        """Words compared elsewhere (a comparing sink in the simulator) that matched or were counted."""
        self.compared += int(n)

    def expect_count(self, where: str, stream: str, got: int, expected: int) -> bool:
        """A stream must deliver exactly ``expected`` words: fewer are missing, more are surplus."""
        if int(got) == int(expected):
            return True
        why = "missing words" if got < expected else "surplus words"
        self._record(where, f"{stream} word count", int(got), int(expected), why)
        return False

    def report(self) -> dict:
        return {"mismatches": self.mismatches, "words_compared": self.compared, "mismatch_kinds": dict(self.kinds),
                "mismatch_details": list(self.details), "mismatch_records": list(self.records),
                "reproduce": self.reproduce}


def _plain(v):
    """Integers and integer sequences as plain Python values (NumPy scalars included)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, bool):
        return int(v)
    return v
