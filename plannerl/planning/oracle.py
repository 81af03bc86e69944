"""The optimality oracle: h*(s) and every optimal next action, for any state.

The paper rewards the expert's action; plannerl can reward any action on some shortest plan,
which needs, for any state s (an expert state or one a policy wandered into), the optimal
cost h*(s) and the set {a : h*(succ(s, a)) = h*(s) - 1}.

One `optimal_search` from s yields the graph of all shortest plans from s; every state on it
gets its h* and optimal actions from that same graph, so labelling a whole expert trajectory
costs one search. With the compiled core that graph is over canonical states (one per orbit
under object symmetry): any later state whose canonical form is a node of an earlier graph,
whichever search found it, is labelled from that node without searching (a node's h* and
optimal actions are exact whatever the root), with the node's actions renamed onto the state's
own objects. Answers are cached per state.
"""

from __future__ import annotations

from dataclasses import dataclass

from plannerl.errors import NoPlanError
from plannerl.pddl.task import Task
from plannerl.planning import compiled
from plannerl.planning.search import Heuristic, _Budget, engine_for, optimal_search


@dataclass(frozen=True)
class Label:
    """What the oracle knows about one state. `h_star` is None when the goal is unreachable."""

    h_star: int | None
    optimal_actions: tuple[int, ...]

    @property
    def canonical_action(self) -> int | None:
        """The expert's action: the smallest-index optimal action (the canonical plan's step)."""
        return self.optimal_actions[0] if self.optimal_actions else None


class Oracle:
    """Labels states of one task with h* and their optimal actions."""

    def __init__(self, task: Task, heuristic: Heuristic | None = None, *,
                 time_limit: float | None = None, max_states: int | None = None, symmetry: bool = True) -> None:
        self.task = task
        self.heuristic = heuristic
        self.time_limit = time_limit
        self.max_states = max_states
        self.symmetry = symmetry
        self._labels: dict[int, Label] = {}
        self._compiled = heuristic is None and compiled.available()
        self._nodes: dict[int, tuple] = {}  # canonical state -> (graph, node)
        self.searches = 0

    def label(self, state: int) -> Label:
        cached = self._labels.get(state)
        if cached is not None:
            return cached
        if self.task.is_goal(state):
            label = Label(0, ())
        elif self._compiled:
            label = self._compiled_label(state)
        else:
            label = self._python_label(state)
        self._labels[state] = label
        return label

    def _compiled_label(self, state: int) -> Label:
        engine = engine_for(self.task, symmetry=self.symmetry)
        canon, perm = engine.canonical(state)
        found = self._nodes.get(canon)
        if found is None:
            try:
                graph = engine.graph(state, _Budget(self.time_limit, self.max_states))
            except NoPlanError:
                return Label(None, ())
            self.searches += 1
            for node, node_state in enumerate(graph.states):
                self._nodes.setdefault(node_state, (graph, node))
            found = self._nodes[canon]
        graph, node = found
        return Label(graph.h_star(node), tuple(graph.actions_at(node, perm)))

    def _python_label(self, state: int) -> Label:
        try:
            result = optimal_search(self.task, self.heuristic, state, time_limit=self.time_limit,
                                    max_states=self.max_states, count_limit=1, compiled=False)
        except NoPlanError:
            return Label(None, ())
        self.searches += 1
        # every state on a shortest plan from `state` is labelled by the same search
        for on_path, (h_star, actions) in result.optimal_labels.items():
            self._labels.setdefault(on_path, Label(h_star, tuple(actions)))
        return self._labels[state]

    def h_star(self, state: int) -> int | None:
        return self.label(state).h_star

    def optimal_actions(self, state: int) -> tuple[int, ...]:
        return self.label(state).optimal_actions

    def canonical_plan(self, state: int | None = None) -> list[int]:
        """The canonical shortest plan from `state`: follow the smallest optimal action."""
        state = self.task.init if state is None else state
        plan = []
        while not self.task.is_goal(state):
            action = self.label(state).canonical_action
            if action is None:
                raise NoPlanError("no plan exists from this state")
            plan.append(action)
            state = self.task.apply(state, action)
        return plan

    def trajectory(self, plan: list[int], state: int | None = None) -> list[tuple[int, Label]]:
        """(state, label) for each state a plan visits before its last action."""
        state = self.task.init if state is None else state
        out = []
        for action in plan:
            out.append((state, self.label(state)))
            state = self.task.apply(state, action)
        return out


def make_oracle(task: Task, *, time_limit: float | None = None, max_states: int | None = None) -> Oracle:
    """The oracle every generated instance is solved and labelled with (one place to swap planners)."""
    return Oracle(task, time_limit=time_limit, max_states=max_states)
