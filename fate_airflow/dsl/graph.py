"""The component graph: deterministic topological order and cycle detection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def topological_order(
    names: Sequence[str], upstream: Mapping[str, Sequence[str]]
) -> tuple[list[str], list[list[str]]]:
    """Order ``names`` so every task comes after its upstream tasks.

    Ties are broken by position in ``names`` (file order), so the order is the same on every party
    and every run. Upstream names not in ``names`` are ignored (they are reported elsewhere).

    :param names: every task, in file order.
    :param upstream: task → the tasks it consumes outputs of.
    :returns: ``(order, cycles)``. ``order`` holds every task not blocked by a cycle. Each cycle is
        listed as ``[a, b, ..., a]`` where each task feeds the next, starting at the cycle's first task
        in file order.
    """
    position = {name: i for i, name in enumerate(names)}
    preds: dict[str, set[str]] = {n: {u for u in upstream.get(n, ()) if u in position} for n in names}
    succs: dict[str, list[str]] = {n: [] for n in names}
    for n in names:
        for u in preds[n]:
            succs[u].append(n)
    waiting = {n: len(preds[n]) for n in names}
    ready = sorted((n for n in names if waiting[n] == 0), key=position.__getitem__)
    order: list[str] = []
    while ready:
        # Small graphs (tens of tasks): a sorted list is simpler than a heap and just as fast.
        current = ready.pop(0)
        order.append(current)
        for nxt in succs[current]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
                ready.sort(key=position.__getitem__)
    done = set(order)
    blocked = [n for n in names if n not in done]
    return order, _cycles(blocked, preds, position)


def _cycles(
    blocked: list[str], preds: Mapping[str, set[str]], position: Mapping[str, int]
) -> list[list[str]]:
    """Distinct cycles among ``blocked`` tasks.

    Each blocked task has a blocked predecessor, so walking backwards always ends in a cycle.
    """
    blocked_set = set(blocked)
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for start in blocked:
        path: list[str] = []
        index: dict[str, int] = {}
        node = start
        while node not in index:
            index[node] = len(path)
            path.append(node)
            node = min((p for p in preds[node] if p in blocked_set), key=position.__getitem__)
        backwards = path[index[node] :]  # each element is fed by the next one
        members = frozenset(backwards)
        if members in seen:
            continue
        seen.add(members)
        forwards = list(reversed(backwards))
        first = min(range(len(forwards)), key=lambda i: position[forwards[i]])
        cycle = forwards[first:] + forwards[:first]
        found.append([*cycle, cycle[0]])
    return found


__all__ = ["topological_order"]
