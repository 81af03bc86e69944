"""Optimal search on a compiled task: one plain function per algorithm.

Every search returns the *canonical* shortest plan: among all shortest plans, the one whose
sequence of action indices is lexicographically smallest. Actions are indexed in sorted PDDL
name order, so the canonical plan is the alphabetically-first shortest plan: a fixed tie-break
that makes the paper's "unique shortest expert plan" well defined whatever the algorithm.

`optimal_search` explores every state whose f = g + h is at most the optimal cost, keeping
each state's optimal predecessors. That graph of optimal paths answers the questions the rest
of plannerl asks: the canonical plan, how many shortest plans exist, and which first actions
are optimal.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from plannerl.errors import LimitError, NoPlanError
from plannerl.task import Task

Heuristic = Callable[[int], int]
INFINITY = float("inf")
DEFAULT_MAX_STATES = 5_000_000


@dataclass
class SearchResult:
    """A canonical shortest plan and what the search learned on the way."""

    plan: list[int]
    expanded: int
    seconds: float
    optimal_plans: int | None = None
    plans_capped: bool = False
    optimal_first_actions: list[int] = field(default_factory=list)
    # state -> (h*, sorted optimal actions) for every state on a shortest plan from the start
    optimal_labels: dict[int, tuple[int, list[int]]] = field(default_factory=dict, repr=False)

    @property
    def length(self) -> int:
        return len(self.plan)


class _Budget:
    """Stops a search at a time or state-count limit with a message saying which."""

    def __init__(self, time_limit: float | None, max_states: int | None) -> None:
        self.start = time.perf_counter()
        self.deadline = None if time_limit is None else self.start + time_limit
        self.time_limit = time_limit
        self.max_states = max_states or DEFAULT_MAX_STATES

    def check(self, states: int) -> None:
        if states > self.max_states:
            raise LimitError(f"no plan found: stopped after {self.max_states} states (state limit)")
        if self.deadline is not None and states % 256 == 0 and time.perf_counter() > self.deadline:
            raise LimitError(f"no plan found within the time limit of {self.time_limit:g} s ({states} states seen)")

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def breadth_first_search(task: Task, start: int | None = None, *, time_limit: float | None = None,
                         max_states: int | None = None) -> SearchResult:
    """Blind breadth-first search. FIFO order over canonically ordered successors makes the
    first path found to each state its lexicographically smallest shortest path."""
    budget = _Budget(time_limit, max_states)
    start = task.init if start is None else start
    parent: dict[int, tuple[int, int] | None] = {start: None}
    queue = deque([start])
    expanded = 0
    while queue:
        state = queue.popleft()
        if task.is_goal(state):
            return SearchResult(_walk_back(parent, state), expanded, budget.elapsed())
        expanded += 1
        for action, child in task.successors(state):
            if child not in parent:
                parent[child] = (state, action)
                queue.append(child)
        budget.check(len(parent))
    raise NoPlanError(f"no plan exists: all {len(parent)} reachable states explored")


def astar_search(task: Task, heuristic: Heuristic, start: int | None = None, *,
                 time_limit: float | None = None, max_states: int | None = None) -> SearchResult:
    """A* with an admissible heuristic; returns the canonical plan (via `optimal_search`)."""
    return optimal_search(task, heuristic, start, time_limit=time_limit, max_states=max_states,
                          count_limit=1)


def optimal_search(task: Task, heuristic: Heuristic | None = None, start: int | None = None, *,
                   time_limit: float | None = None, max_states: int | None = None,
                   count_limit: int = 1_000_000) -> SearchResult:
    """A* that keeps going until every state with f <= C* is expanded.

    It records, for each state, the predecessors that reach it on a shortest path, so the
    result carries the canonical plan, the number of shortest plans (capped at `count_limit`)
    and the set of optimal first actions. An admissible heuristic is enough: a state whose g
    improves is re-opened. Without a heuristic this is uniform-cost (breadth-first) search.
    """
    budget = _Budget(time_limit, max_states)
    h = heuristic or (lambda state: 0)
    start = task.init if start is None else start
    h_start = h(start)
    if h_start == INFINITY:
        raise NoPlanError("no plan exists: the heuristic proves the goal unreachable")
    g: dict[int, int] = {start: 0}
    h_cache: dict[int, float] = {start: h_start}
    preds: dict[int, list[tuple[int, int]]] = {start: []}
    closed_g: dict[int, int] = {}
    open_heap: list[tuple[float, int, int, int]] = [(h_start, 0, 0, start)]
    tick = 0
    best = INFINITY
    goals: list[int] = []
    expanded = 0
    while open_heap:
        f, g_state, _, state = heapq.heappop(open_heap)
        if f > best:
            break
        if g_state != g[state] or closed_g.get(state) == g_state:
            continue
        closed_g[state] = g_state
        if task.is_goal(state):
            best = g_state
            goals.append(state)
            continue
        expanded += 1
        g_child = g_state + 1
        for action, child in task.successors(state):
            old = g.get(child)
            if old is not None and old < g_child:
                continue
            h_child = h_cache.get(child)
            if h_child is None:
                h_child = h_cache[child] = h(child)
            if h_child == INFINITY or g_child + h_child > best:
                continue
            if old is None or g_child < old:
                g[child] = g_child
                preds[child] = [(state, action)]
                tick += 1
                heapq.heappush(open_heap, (g_child + h_child, g_child, tick, child))
            else:
                preds[child].append((state, action))
        budget.check(len(g))
    if not goals:
        raise NoPlanError(f"no plan exists: all {len(g)} reachable states explored")
    return _optimal_dag_result(start, goals, g, preds, expanded, budget.elapsed(), count_limit)


def _optimal_dag_result(start, goals, g, preds, expanded, seconds, count_limit) -> SearchResult:
    """Canonical plan, plan count and optimal first actions from the optimal-path graph."""
    best = g[goals[0]]
    on_path: set[int] = set()
    stack = [s for s in goals if g[s] == best]
    on_path.update(stack)
    while stack:
        state = stack.pop()
        for parent, _ in preds[state]:
            if parent not in on_path and g[parent] + 1 == g[state]:
                on_path.add(parent)
                stack.append(parent)
    children: dict[int, list[tuple[int, int]]] = {}
    for state in on_path:
        for parent, action in preds[state]:
            if parent in on_path and g[parent] + 1 == g[state]:
                children.setdefault(parent, []).append((action, state))
    # number of shortest plans, layer by layer from the start
    count = {start: 1}
    for state in sorted(on_path - {start}, key=g.__getitem__):
        count[state] = min(count_limit, sum(count[p] for p, _ in preds[state]
                                            if p in on_path and g[p] + 1 == g[state]))
    total = min(count_limit, sum(count[s] for s in on_path if g[s] == best and s in set(goals)))
    plan = []
    state = start
    while g[state] < best:
        action, state = min(children[state])
        plan.append(action)
    labels = {state: (best - g[state], sorted({a for a, _ in children.get(state, [])})) for state in on_path}
    return SearchResult(plan, expanded, seconds, total, total >= count_limit, labels[start][1], labels)


def _walk_back(parent: dict[int, tuple[int, int] | None], state: int) -> list[int]:
    plan = []
    while parent[state] is not None:
        state, action = parent[state]
        plan.append(action)
    plan.reverse()
    return plan
