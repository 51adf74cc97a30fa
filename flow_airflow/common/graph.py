"""The task graph of a flow: parents, ancestors and an order to build in.

Every walk here is iterative and linear in the tasks and relations (ancestors: a bit set per
task), so that the size of a flow is never limited by Python's recursion depth or by a
quadratic cost: a chain of 5,000 tasks checks and plans like a short one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Set
from dataclasses import dataclass, field
from functools import cached_property


class TitleSet(Set[str]):
    """A set of titles kept as the bits of an int over ``titles`` (read-only, cheap to build)."""

    def __init__(self, bits: int, titles: list[str], index: dict[str, int]):
        self._bits, self._titles, self._index = bits, titles, index

    def __contains__(self, title: object) -> bool:
        i = self._index.get(title) if isinstance(title, str) else None
        return i is not None and bool(self._bits >> i & 1)

    def __iter__(self) -> Iterator[str]:
        bits = self._bits
        while bits:
            low = bits & -bits
            yield self._titles[low.bit_length() - 1]
            bits ^= low

    def __len__(self) -> int:
        return self._bits.bit_count()


@dataclass
class Graph:
    """Tasks by title and the edges between them, in the order the flow lists them."""

    titles: list[str]
    edges: list[tuple[str, str]] = field(default_factory=list)

    @cached_property
    def parents(self) -> dict[str, list[str]]:
        result: dict[str, dict[str, None]] = {t: {} for t in self.titles}
        for source, target in self.edges:
            result[target][source] = None
        return {t: list(found) for t, found in result.items()}

    @cached_property
    def children(self) -> dict[str, list[str]]:
        result: dict[str, dict[str, None]] = {t: {} for t in self.titles}
        for source, target in self.edges:
            result[source][target] = None
        return {t: list(found) for t, found in result.items()}

    def find_cycle(self) -> list[str] | None:
        """A cycle as a list of titles (first repeated at the end), or None (a depth-first walk, no recursion)."""
        state: dict[str, int] = {}  # 1: on the path, 2: done
        for start in self.titles:
            if start in state:
                continue
            path: list[str] = [start]
            todo: list[Iterator[str]] = [iter(self.children[start])]
            state[start] = 1
            while todo:
                child = next(todo[-1], None)
                if child is None:
                    state[path.pop()] = 2
                    todo.pop()
                elif state.get(child) == 1:
                    return [*path[path.index(child) :], child]
                elif child not in state:
                    state[child] = 1
                    path.append(child)
                    todo.append(iter(self.children[child]))
        return None

    @cached_property
    def order(self) -> list[str]:
        """Titles in topological order, stable with respect to the file's order (Kahn)."""
        pending = {t: len(self.parents[t]) for t in self.titles}
        ready = deque(t for t in self.titles if pending[t] == 0)
        result: list[str] = []
        while ready:
            title = ready.popleft()
            result.append(title)
            for child in self.children[title]:
                pending[child] -= 1
                if pending[child] == 0:
                    ready.append(child)
        if len(result) != len(self.titles):
            raise ValueError("the flow has a cycle")
        return result

    @cached_property
    def ancestors(self) -> dict[str, TitleSet]:
        """Every task before each task, directly or through others."""
        index = {t: i for i, t in enumerate(self.titles)}
        bits: dict[str, int] = {}
        for title in self.order:
            found = 0
            for parent in self.parents[title]:
                found |= bits[parent] | 1 << index[parent]
            bits[title] = found
        return {t: TitleSet(bits[t], self.titles, index) for t in self.titles}

    def upstream_in_order(self, title: str, among: Iterable[str] | None = None) -> list[str]:
        wanted = self.ancestors[title] if among is None else set(among)
        return [t for t in self.order if t in wanted]
