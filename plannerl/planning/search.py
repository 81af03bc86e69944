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
from array import array
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from plannerl.errors import LimitError, NoPlanError, StateLimitError
from plannerl.pddl.task import Task
from plannerl.planning import compiled as _compiled
from plannerl.planning.heuristics import build_pattern_sum, shares_goal_objects
from plannerl.planning.symmetry import Symmetry, compose, inverse

Heuristic = Callable[[int], int]
INFINITY = float("inf")
DEFAULT_MAX_STATES = 5_000_000
# states a search with the cheaper patterns (one per goal fact) may store before the engine
# builds the patterns per goal object and searches again: those cost 1.5-2 s per
# lettuce_tomato_sandwich instance to build (132k abstract states), which most instances do
# not need (session 19)
CHEAP_HEURISTIC_STATES = 20_000
# names how many states a search needs: a state limit hit by an earlier search is trusted
# (`plannerl.planning.lengths`) only if it was this search. Change it whenever the heuristic or
# the state count changes (2: the patterns per goal object, session 19)
SEARCH_VERSION = 2


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
            raise StateLimitError(f"no plan found: stopped after {self.max_states} states (state limit)")
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


def optimal_search(task: Task, heuristic: Heuristic | None = None, start: int | None = None, *,
                   time_limit: float | None = None, max_states: int | None = None,
                   count_limit: int = 1_000_000, symmetry: bool = True, compiled: bool | None = None) -> SearchResult:
    """A* that keeps going until every state with f <= C* is expanded.

    It records, for each state, the predecessors that reach it on a shortest path, so the
    result carries the canonical plan, the number of shortest plans (capped at `count_limit`)
    and the set of optimal first actions. An admissible heuristic is enough: a state whose g
    improves is re-opened.

    By default (no `heuristic` given, compiled core built) this runs in `plannerl.planning._core` over
    canonical states under object symmetry (`symmetry=False` turns that off) with the pattern
    databases of `plannerl.planning.heuristics`; `optimal_labels` is then computed on demand. With a
    Python `heuristic`, or `compiled=False`, or without the compiled core, it runs the plain
    Python A* below (without a heuristic: uniform-cost search).
    """
    use_compiled = compiled if compiled is not None else heuristic is None
    if use_compiled and _compiled.available() and heuristic is None:
        return engine_for(task, symmetry=symmetry).search(start, time_limit=time_limit, max_states=max_states,
                                                          count_limit=count_limit)
    return python_optimal_search(task, heuristic, start, time_limit=time_limit, max_states=max_states,
                                 count_limit=count_limit)


def python_optimal_search(task: Task, heuristic: Heuristic | None = None, start: int | None = None, *,
                          time_limit: float | None = None, max_states: int | None = None,
                          count_limit: int = 1_000_000) -> SearchResult:
    """`optimal_search` in pure Python over the task's own states (no symmetry): the reference
    the compiled search is tested against, and the fallback without the compiled core."""
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


# ---------------------------------------------------------------- compiled search over canonical states


class Engine:
    """A task prepared for `plannerl.planning._core`: its symmetry, its compiled form and (built on the
    first search that needs them) its pattern databases. One per task and symmetry setting (`engine_for`).

    Two sets of patterns: one per goal fact (`patterns`), cheap, and one per goal object
    (`object_patterns`: a lettuce's cuts and its place in the stack in one database), which
    can cost more to build than the whole search needs. Where they differ, a search first runs
    with the cheap ones for up to `CHEAP_HEURISTIC_STATES` states; past that the engine builds
    the others and keeps them for every later search. Either way the graph of shortest plans,
    and so every label, is the same: only the effort differs."""

    def __init__(self, task: Task, *, symmetry: bool = True) -> None:
        self.task = task
        self.symmetry = Symmetry(task, enabled=symmetry)
        self.core = _compiled.core_for_task(task, self.symmetry)
        self.nfacts = len(task.facts)
        self.patterns = None
        self.object_patterns = None
        self.pattern_seconds = 0.0
        self.two_pattern_sets = shares_goal_objects(task)  # else the patterns per goal object are those per goal fact

    def heuristic_patterns(self, *, by_object: bool = False) -> list:
        """The (database core, projection) pairs of the patterns per goal fact, or per goal object."""
        if not by_object or not self.two_pattern_sets:
            if self.patterns is None:
                self.patterns = self._build(by_object=False)
            return self.patterns
        if self.object_patterns is None:
            self.object_patterns = self._build(by_object=True)
        return self.object_patterns

    def _build(self, *, by_object: bool) -> list:
        built = build_pattern_sum(self.task, self.symmetry, self.core, by_object=by_object)
        self.pattern_seconds += built.seconds
        return built.core_patterns()

    def canonical(self, state: int) -> tuple[int, list[int]]:
        """The canonical representative of `state`'s orbit and the renaming (object id -> object
        id) that maps `state` onto it."""
        data, perm = self.core.canonical(_compiled.to_bytes(state, self.nfacts))
        return _compiled.from_bytes(data), list(array("i", perm))

    def search(self, start: int | None = None, *, time_limit: float | None = None, max_states: int | None = None,
               count_limit: int = 1_000_000) -> SearchResult:
        budget = _Budget(time_limit, max_states)
        graph = self.graph(start, budget)
        start = self.task.init if start is None else start
        plan = graph.canonical_plan(start)
        count = graph.plan_count(count_limit)
        return SearchResult(plan, graph.expanded, budget.elapsed(), count, count >= count_limit, graph.label(start)[1],
                            OptimalLabels(graph))

    def graph(self, start: int | None, budget) -> OptimalGraph:
        """All shortest plans from `start`, over canonical states; LimitError/NoPlanError otherwise.
        `budget.max_states` bounds the search that decides, with the stronger patterns (the cheap
        try before it stops at `CHEAP_HEURISTIC_STATES`, or at the budget when that is smaller)."""
        start = self.task.init if start is None else start
        if self.object_patterns is None and self.two_pattern_sets:
            try:
                return self._graph(start, budget, self.heuristic_patterns(),
                                   min(CHEAP_HEURISTIC_STATES, budget.max_states))
            except StateLimitError:
                pass
        return self._graph(start, budget, self.heuristic_patterns(by_object=True), budget.max_states)

    def _graph(self, start: int, budget, patterns: list, max_states: int) -> OptimalGraph:
        remaining = 0.0
        if budget.deadline is not None:
            remaining = budget.deadline - time.perf_counter()
            if remaining <= 0:
                raise LimitError(f"no plan found within the time limit of {budget.time_limit:g} s (0 states seen)")
        status, cstar, expanded, generated, stored, states, gs, edges = self.core.search(
            _compiled.to_bytes(start, self.nfacts), patterns, max_states, remaining)
        if status == 2:
            raise StateLimitError(f"no plan found: stopped after {max_states} states (state limit)")
        if status == 3:
            raise LimitError(f"no plan found within the time limit of {budget.time_limit:g} s ({stored} states seen)")
        if status == 1 and not stored:
            raise NoPlanError("no plan exists: the heuristic proves the goal unreachable from the start")
        if status == 1:
            raise NoPlanError(f"no plan exists: all {stored} reachable states explored")
        return OptimalGraph(self, start, cstar, states, gs, edges, expanded, generated, stored)


def engine_for(task: Task, *, symmetry: bool = True) -> Engine:
    """The task's engine, made on first use and kept on the task (`Task.caches.engines`): the
    pattern databases and symmetry it holds cost more than most searches."""
    engines = task.caches.engines
    if symmetry not in engines:
        engines[symmetry] = Engine(task, symmetry=symmetry)
    return engines[symmetry]


class OptimalGraph:
    """Every shortest plan from one start state, over canonical states: node states, their depth
    g, and each node's optimal actions with the node they lead to.

    A concrete state on a shortest plan maps onto a node by a renaming of interchangeable
    objects; its optimal actions are the node's, renamed back, so every concrete optimal action
    is found, not only a representative. Walking a concrete plan keeps the renaming up to date
    from the edges, so no state ever needs to be looked up by its canonical form twice."""

    def __init__(self, engine: Engine, start: int, cstar: int, states: bytes, gs: bytes, edges: bytes, expanded: int,
                 generated: int, stored: int) -> None:
        self.engine = engine
        self.start = start
        self.cstar = cstar
        size = _compiled.words(engine.nfacts) * 8
        self.states = [_compiled.from_bytes(states[i:i + size]) for i in range(0, len(states), size)]
        self.g = list(array("i", gs))
        self.index = {state: node for node, state in enumerate(self.states)}
        triples = array("i", edges)
        self.out: list[list[tuple[int, int]]] = [[] for _ in self.states]
        for i in range(0, len(triples), 3):
            self.out[triples[i]].append((triples[i + 1], triples[i + 2]))
        self.expanded, self.generated, self.stored = expanded, generated, stored

    def h_star(self, node: int) -> int:
        return self.cstar - self.g[node]

    def locate(self, state: int) -> tuple[int, list[int]] | None:
        """(node, renaming) of a concrete state whose canonical form is a node, else None."""
        canon, perm = self.engine.canonical(state)
        node = self.index.get(canon)
        return None if node is None else (node, perm)

    def actions_at(self, node: int, perm: list[int]) -> list[int]:
        """The concrete optimal actions of the state that `perm` maps onto `node`, sorted."""
        back = inverse(perm)
        sym = self.engine.symmetry
        return sorted({sym.permute_action(b, back) for b, _ in self.out[node]}) if not sym.trivial else \
            sorted({b for b, _ in self.out[node]})

    def step(self, node: int, perm: list[int], action: int) -> tuple[int, list[int]] | None:
        """The node and renaming after the concrete `action`, when it is optimal, else None."""
        sym = self.engine.symmetry
        b = action if sym.trivial else sym.permute_action(action, perm)
        for a, child in self.out[node]:
            if a == b:
                if sym.trivial:
                    return child, perm
                canon, rho = self.engine.canonical(self.engine.task.apply(self.states[node], b))
                return child, compose(rho, perm)
        return None

    def label(self, state: int) -> tuple[int, list[int]]:
        """(h*, optimal actions) of a concrete state whose canonical form is on the graph."""
        found = self.locate(state)
        if found is None:
            raise KeyError(state)
        node, perm = found
        return self.h_star(node), self.actions_at(node, perm)

    def canonical_plan(self, start: int) -> list[int]:
        """The lexicographically smallest shortest plan (by action index) from `start`."""
        found = self.locate(start)
        node, perm = found
        state, plan = start, []
        while self.out[node]:
            action = self.actions_at(node, perm)[0]
            plan.append(action)
            node, perm = self.step(node, perm, action)
            state = self.engine.task.apply(state, action)
        return plan

    def plan_count(self, limit: int) -> int:
        """The number of shortest plans of concrete actions (capped at `limit`): each node's
        optimal actions are its concrete state's optimal actions renamed, so counting node
        edges counts concrete plans."""
        count = [0] * len(self.states)
        for node in sorted(range(len(self.states)), key=self.g.__getitem__, reverse=True):
            count[node] = 1 if not self.out[node] else min(limit, sum(count[child] for _, child in self.out[node]))
        return count[self.locate(self.start)[0]]


class OptimalLabels(Mapping):
    """state -> (h*, sorted optimal actions) for any concrete state on a shortest plan, computed
    on demand from an `OptimalGraph` (with symmetry there can be far too many to list).
    Iterating yields the states of the canonical plan (the expert trajectory)."""

    def __init__(self, graph: OptimalGraph) -> None:
        self.graph = graph

    def __getitem__(self, state: int) -> tuple[int, list[int]]:
        return self.graph.label(state)

    def __contains__(self, state) -> bool:
        return isinstance(state, int) and self.graph.locate(state) is not None

    def __iter__(self):
        state = self.graph.start
        yield state
        for action in self.graph.canonical_plan(state):
            state = self.graph.engine.task.apply(state, action)
            yield state

    def __len__(self) -> int:
        return self.graph.cstar + 1
