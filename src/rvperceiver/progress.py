"""Progress on long work: no command of the README's workflows stays silent for more than a few seconds.

Everything here writes to stderr (through tqdm), so a command's stdout stays the result a script can parse.
``enabled=False`` (the CLI's ``--quiet``, or library callers that did not ask) makes every helper silent.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm.auto import tqdm

__all__ = ["Passes", "bar", "note"]

T = TypeVar("T")


def bar(iterable: Iterable[T] | None = None, *, desc: str, total: int | None = None, unit: str = "it",
        enabled: bool = True, **kwargs: Any) -> Any:
    """A tqdm bar on stderr (elapsed, rate and ETA), or a silent pass-through when not ``enabled``."""
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, **kwargs)


class Passes:
    """A re-iterable that shows one bar per pass over ``batches``.

    Fitting a view's statistics makes one or two streaming passes over a re-iterable (a DataLoader); wrapping it
    in ``Passes`` labels them ``statistics pass 1``, ``pass 2`` without the fitting code knowing about progress.
    """

    def __init__(self, batches: Iterable[T], desc: str, enabled: bool = True, unit: str = "batch") -> None:
        self.batches, self.desc, self.enabled, self.unit = batches, desc, enabled, unit
        self.count = 0

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        self.count += 1
        total = len(self.batches) if hasattr(self.batches, "__len__") else None  # type: ignore[arg-type]
        with bar(self.batches, desc=f"{self.desc} (pass {self.count})", total=total, unit=self.unit,
                 enabled=self.enabled, leave=False) as it:
            yield from it


def note(message: str, enabled: bool = True) -> None:
    """One line on stderr (next to the bars, not in the command's result on stdout)."""
    if enabled:
        tqdm.write(message, file=sys.stderr)
