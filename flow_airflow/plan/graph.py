"""The task graph of a flow: parents, ancestors and an order to build in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property


@dataclass
class Graph:
    """Tasks by title and the edges between them, in the order the flow lists them."""

    titles: list[str]
    edges: list[tuple[str, str]] = field(default_factory=list)

    @cached_property
    def parents(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {t: [] for t in self.titles}
        for source, target in self.edges:
            if source not in result[target]:
                result[target].append(source)
        return result

    @cached_property
    def children(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {t: [] for t in self.titles}
        for source, target in self.edges:
            if target not in result[source]:
                result[source].append(target)
        return result

    def find_cycle(self) -> list[str] | None:
        """A cycle as a list of titles (first repeated at the end), or None."""
        state: dict[str, int] = {}  # 1: on the stack, 2: done
        stack: list[str] = []

        def visit(node: str) -> list[str] | None:
            state[node] = 1
            stack.append(node)
            for child in self.children[node]:
                if state.get(child) == 1:
                    return [*stack[stack.index(child) :], child]
                if child not in state and (cycle := visit(child)):
                    return cycle
            stack.pop()
            state[node] = 2
            return None

        for title in self.titles:
            if title not in state and (cycle := visit(title)):
                return cycle
        return None

    @cached_property
    def order(self) -> list[str]:
        """Titles in topological order, stable with respect to the file's order (Kahn)."""
        pending = {t: len(self.parents[t]) for t in self.titles}
        ready = [t for t in self.titles if pending[t] == 0]
        result: list[str] = []
        while ready:
            title = ready.pop(0)
            result.append(title)
            for child in self.children[title]:
                pending[child] -= 1
                if pending[child] == 0:
                    ready.append(child)
        if len(result) != len(self.titles):
            raise ValueError("the flow has a cycle")
        return result

    @cached_property
    def ancestors(self) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {}
        for title in self.order:
            found: set[str] = set()
            for parent in self.parents[title]:
                found |= {parent, *result[parent]}
            result[title] = found
        return result

    def upstream_in_order(self, title: str, among: Iterable[str] | None = None) -> list[str]:
        wanted = self.ancestors[title] if among is None else set(among)
        return [t for t in self.order if t in wanted]
