"""The base of every examples container: ``len``, ``take``, ``select`` and a seeded ``split``.

A reader returns its rows as a dataclass of parallel per-row lists (``texts``, ``labels``,
``rows``...) plus a few whole-set attributes (``source``). :class:`Examples` gives such a
dataclass the operations every task needs, written once:

* ``len(examples)``: the number of rows;
* :meth:`~Examples.take` and :meth:`~Examples.select`: a new container of some rows, built
  by picking from each field listed in :attr:`~Examples.row_fields`;
* :meth:`~Examples.split`: hold out a seeded random share of the rows. Which rows are held
  out comes from :meth:`~Examples.held_out_indices`, which a subclass overrides to hold out
  whole groups instead (question answering holds out whole articles).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Lines(Examples):
    ...     row_fields = ("texts", "rows")
    ...     texts: list[str]
    ...     source: str
    ...     rows: list[int]
    >>> lines = Lines(["a", "b", "c", "d"], "f.txt", [1, 2, 3, 4])
    >>> rest, held_out = lines.split(0.25, seed=0)
    >>> len(rest), len(held_out), lines.take(2).texts
    (3, 1, ['a', 'b'])
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from typing import Any, ClassVar, Self

from tfft.errors import ConfigError


class Examples:
    """Mixin of dataclasses holding one list entry per example (row).

    A subclass is a ``@dataclass`` that declares, as plain class attributes (not dataclass
    fields):

    * ``row_fields``: the names of its per-row fields, the one that defines the length
      first (``("texts", "pairs", "labels", "rows", "label_lists")``); a field may be None
      (no such data), and is then kept as None;
    * ``noun`` (optional): what a row is called in messages; ``"examples"`` by default.

    It must also have a ``source`` attribute (the path the rows came from, for messages).
    Every field that is not in ``row_fields`` is copied as it is by :meth:`select`.
    """

    row_fields: ClassVar[tuple[str, ...]] = ()
    noun: ClassVar[str] = "examples"
    source: str

    def __post_init__(self) -> None:
        first = self.row_fields[0]
        count = len(getattr(self, first))
        for name in self.row_fields[1:]:
            values = getattr(self, name)
            if values is not None and len(values) != count:
                raise ValueError(
                    f"{type(self).__name__}: {name} has {len(values)} items but {first} has {count}."
                )

    def __len__(self) -> int:
        return len(getattr(self, self.row_fields[0]))

    def take(self, n: int) -> Self:
        """Return the first ``n`` examples (all of them if there are fewer).

        Args:
            n: How many examples to keep; 0 or more.

        Returns:
            A new container of the same type.

        Raises:
            ConfigError: ``n`` is negative.
        """
        if n < 0:
            raise ConfigError(f"Cannot take a negative number of examples. Received: n={n}")
        return self.select(range(min(n, len(self))))

    def select(self, indices: Iterable[int]) -> Self:
        """Return the examples at ``indices`` (0-based), in that order.

        Args:
            indices: Positions of the examples to keep.

        Returns:
            A new container of the same type; fields outside ``row_fields`` are copied.
        """
        indices = list(indices)

        def pick(values: list[Any] | None) -> list[Any] | None:
            return None if values is None else [values[i] for i in indices]

        return dataclasses.replace(self, **{name: pick(getattr(self, name)) for name in self.row_fields})

    def split(self, fraction: float, seed: int) -> tuple[Self, Self]:
        """Hold out a random ``fraction`` of the examples, deterministically for a seed.

        The rows to hold out come from :meth:`held_out_indices`; both parts keep the order
        of the source, so their ``rows`` stay ascending.

        Args:
            fraction: Share of examples to hold out, strictly between 0 and 1.
            seed: Seed of the shuffle; the same seed always picks the same examples.

        Returns:
            ``(rest, held_out)``.

        Raises:
            ConfigError: ``fraction`` is not in (0, 1), or too few examples to leave at least
                one on each side.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ConfigError(
                f"The held-out fraction must be between 0 and 1. Received: fraction={fraction!r}"
            )
        held = set(self.held_out_indices(fraction, seed))
        rest = [i for i in range(len(self)) if i not in held]
        return self.select(rest), self.select(sorted(held))

    def held_out_indices(self, fraction: float, seed: int) -> list[int]:
        """The positions :meth:`split` holds out, in any order; override to hold out groups.

        This default holds out ``max(1, round(fraction * len(self)))`` examples: the first
        ones of ``range(len(self))`` shuffled by ``random.Random(seed)``.

        Args:
            fraction: Share of examples to hold out, already checked to be in (0, 1).
            seed: Seed of the shuffle.

        Raises:
            ConfigError: That would leave no example to train on.
        """
        held = max(1, round(fraction * len(self)))
        if held >= len(self):
            raise ConfigError(
                f"{self.source}: cannot hold out {fraction:g} of {len(self)} {self.noun} and keep any "
                f"to train on. Received: fraction={fraction!r}"
            )
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        return order[:held]
