"""The renderer: cooking templates, the generic fallback on a non-cooking domain, sections, order."""

from __future__ import annotations

import random
import shutil

import pytest
from conftest import COOKING_PROBLEMS, DOMAINS, FIXTURES

from plannerl.errors import PlannerlError
from plannerl.planning.planner import load_task
from plannerl.tasks.generate import generate_instance
from plannerl.tasks.render import action_sentence, load_templates, natural_key, render_messages, render_prompt, state_lines

BLOCKS = FIXTURES / "data" / "blocks"


def burger():
    return load_task(None, DOMAINS / "burger.pddl")


def test_cooking_action_sentences_come_from_the_templates():
    task = burger()
    sentences = {task.actions[i].pddl: action_sentence(task, i) for i in range(len(task.actions))}
    assert sentences["(pick-up robot1 patty1 table3)"] == "Pick up patty1 from table3 using robot1"
    assert sentences["(move robot1 table1 table2)"] == "Move robot1 from table1 to table2"
    assert sentences["(stack robot1 topbun1 patty1 table1)"] == "Stack topbun1 on top of patty1 using robot1"
    assert sentences["(place robot1 patty1 table2)"] == "Place patty1 on table2 using robot1"


def test_cooking_state_reads_as_sentences_one_block_per_object():
    task = burger()
    lines = state_lines(task, task.init)
    assert lines[0] == "table1 is a table."
    assert "patty1 is a patty. patty1 is in the stack at table3. patty1 is directly on top of table3. " \
           "patty1 has nothing above it. patty1 can be cooked. patty1 is cooked." in lines
    assert lines[-1] == "robot1 is a robot. robot1 is at table1. robot1 is holding nothing."
    # stations first, then items, then the robot
    assert [line.split()[0] for line in lines] == ["table1", "table2", "table3", "bottombun1", "topbun1", "patty1", "robot1"]


def test_prompt_sections_in_order_and_optional():
    task = burger()
    plan_start = task.find_action("(move robot1 table1 table3)")
    state = task.apply(task.init, plan_start)
    text = render_prompt(task, state, history=[plan_start])
    order = ["You control robot1", "Goal:", "Current state:",
             "Previous actions (the last 1, oldest first):\n1. Move robot1 from table1 to table3",
             "Valid actions:", "Answer format:", "Action: <one valid action"]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert "- Pick up patty1 from table3 using robot1" in text
    assert "- bottombun1 is directly on top of table1\n- patty1 is directly on top of bottombun1" in text
    assert "Valid actions:" not in render_prompt(task, state, show_valid=False)
    assert "Previous actions" not in render_prompt(task, state, history=[plan_start], history_len=0)
    assert "Previous actions: none yet." in render_prompt(task, task.init)


def test_history_shows_the_last_k_with_their_step_numbers():
    task = burger()
    history = [task.find_action(f"(move robot1 {a} {b})") for a, b in
               [("table1", "table2"), ("table2", "table3"), ("table3", "table1"), ("table1", "table3")]]
    text = render_prompt(task, task.init, history=history, history_len=2)
    assert "(the last 2, oldest first):\n3. Move robot1 from table3 to table1\n4. Move robot1 from table1 to table3\n" in text
    assert "Move robot1 from table1 to table2\n" not in text.split("Valid actions:")[0]


def test_messages_hold_the_same_text_as_the_prompt():
    task = burger()
    messages = render_messages(task, task.init, history=[])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert render_prompt(task, task.init, history=[]) == messages[0]["content"] + "\n\n" + messages[1]["content"] + "\n"
    assert messages[1]["content"].startswith("Goal:")


@pytest.mark.parametrize("problem", COOKING_PROBLEMS, ids=lambda p: p.stem)
def test_rendering_is_deterministic_and_every_sentence_is_distinct_per_state(problem):
    task = load_task(None, problem)
    again = load_task(None, problem)
    rng = random.Random(0)
    state = task.init
    for _ in range(15):
        assert render_prompt(task, state) == render_prompt(again, state)
        valid = task.applicable(state)
        sentences = [action_sentence(task, a) for a in valid]
        assert len(set(sentences)) == len(sentences), "two valid actions share a sentence"
        state = task.apply(state, rng.choice(valid))


def test_generated_instances_render_with_the_templates():
    task = generate_instance("cheese_burger", 5, extra_stations=(0, 3), distractors=(0, 2)).load_task()
    text = render_prompt(task, task.init)
    assert "is a table" in text and "robot1 is at " in text and "(at " not in text


def test_generic_rendering_for_a_domain_without_templates():
    task = load_task(None, BLOCKS / "swap4.pddl")
    assert load_templates(task.domain).path is None
    text = render_prompt(task, task.init, history=[])
    assert "planning problem in the PDDL domain tiny-blocks" in text
    assert "- on(b, c)\n- on(d, a)" in text
    assert "a is a block. on(a, b). clear(a)." in text and "\nhandempty.\n" in text
    assert "- unstack(a, b)\n- unstack(c, d)" in text
    assert action_sentence(task, task.find_action("(pick_up a)")) == "pick_up(a)"


def test_a_copied_cooking_domain_still_renders_in_sentences(tmp_path):
    shutil.copy(DOMAINS / "cooking.pddl", tmp_path / "cooking.pddl")
    shutil.copy(DOMAINS / "burger.pddl", tmp_path / "burger.pddl")
    task = load_task(None, tmp_path / "burger.pddl")
    assert "- Move robot1 from table1 to table2\n" in render_prompt(task, task.init)
    # a different domain that only shares the name gets the generic rendering
    changed = (DOMAINS / "cooking.pddl").read_text().replace("(:action cook", "(:action bake")
    (tmp_path / "cooking.pddl").write_text(changed)
    task = load_task(None, tmp_path / "burger.pddl")
    assert "move(robot1, table1, table2)" in render_prompt(task, task.init)


@pytest.mark.parametrize(("templates", "message"), [
    ('[actions]\nmove = "Move {0} to {5}"\n', "actions.move: placeholder {5} but move takes 3 argument(s)"),
    ('[predicates]\nteleported = "{0} teleported"\n', "predicates.teleported: the domain has no predicate teleported"),
    ('[actions]\nmove = "Move {0"\n', "actions.move: bad template"),
    ('colour = "red"\n', "colour: unknown field"),
    ('[actions\n', "not valid TOML"),
    ('[compact.actions]\nmove = "Move to {2:inside} {2}"\n', "compact.actions.move: {2:inside} needs a two-argument predicate"),
    ('[compact.actions]\nmove = "Move to {2:clear}"\n', "compact.actions.move: {2:clear} needs a two-argument predicate"),
    ('[compact.actions]\nfly = "Fly"\n', "compact.actions.fly: the domain has no action fly"),
    ('[compact.predicates]\nat = "{0} at {1:vacant}"\n', "compact.predicates.at: {1:vacant} needs a two-argument predicate"),
    ('[predicates]\nat = "{0} at {1:in}"\n', "predicates.at: placeholder {1} may not have a format spec"),
    ('[compact]\nverbs = {}\n', "[compact] may only hold"),
    ('[compact.typed]\n"empty fridge" = "{0} free"\n', "compact.typed.empty fridge: expected \"predicate type\""),
    ('[compact.typed]\nempty = "{0} free"\n', "compact.typed.empty: expected \"predicate type\""),
    ('[compact.typed]\n"empty stove" = "{0} and {3}"\n', "placeholder {3} but empty takes 1 argument(s)"),
])
def test_bad_templates_name_the_file_and_key(tmp_path, templates, message):
    shutil.copy(DOMAINS / "cooking.pddl", tmp_path / "cooking.pddl")
    shutil.copy(DOMAINS / "burger.pddl", tmp_path / "burger.pddl")
    (tmp_path / "cooking.templates.toml").write_text(templates)
    task = load_task(None, tmp_path / "burger.pddl")
    with pytest.raises(PlannerlError) as info:
        render_prompt(task, task.init)
    assert str(info.value).startswith(str(tmp_path / "cooking.templates.toml")) and message in str(info.value)


def test_compact_prompt_keeps_goal_state_and_history_and_drops_what_does_not_change():
    from plannerl.tasks.render import compact_prompt
    from plannerl.tasks.styles import get_style

    task = generate_instance("burger", 7, extra_stations=(12, 12), distractors=(3, 3)).load_task()
    move = task.applicable(task.init)[0]
    state = task.apply(task.init, move)
    text = compact_prompt(task, state, history=[move])
    full = render_prompt(task, state, history=[move])
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines] == ["Goal", "State", "Last"]
    assert lines[2] == f"Last: {action_sentence(task, move)}."
    robot_at = next(f for f in task.true_facts(state) if f[0] == "at")
    here = sorted(f[1] for f in task.true_facts(state) if f[0] == "in" and f[2] == robot_at[2])
    assert f"{robot_at[1]} at {' and '.join(here) or 'nothing'} at {robot_at[2]}." in lines[1]  # {1:in}: what is here
    for atom in task.true_facts(state):  # every item's position is stated; empty stations are not
        if atom[0] in ("on", "on-station"):
            assert f"{atom[1]} on {atom[2]}" in lines[1]
    assert "has nothing on it" not in text and "Valid actions" not in text and "You control" not in text
    assert len(text) * 4 < len(full)
    assert get_style("compact").prompt(task, state, history=[move]) == text
    assert get_style("full").prompt(task, state, history=[move]) == full
    assert compact_prompt(task, task.init, history=[], history_len=0).count("\n") == 2
    # a goal fact the compact templates hide (cheese_burger's clear top bun) leaves no empty phrase
    cheese = generate_instance("cheese_burger", 1001, best_binding=False).load_task()
    assert compact_prompt(cheese, cheese.init).splitlines()[0].endswith("topbun1 on cheese1.")
    with pytest.raises(PlannerlError, match="unknown prompt style 'short'"):
        get_style("short").prompt(task, state)


def test_todo_prompt_lists_the_goal_facts_left_in_goal_order_until_the_goal_is_reached():
    """The "todo" style is the compact prompt with the goal reduced to its facts not yet true:
    along an optimal plan the list only shrinks, its first fact names the next item to fetch,
    and at the end it says so."""
    from plannerl.tasks.generate import solve_instance
    from plannerl.tasks.render import compact_fact, compact_prompt
    from plannerl.tasks.styles import get_style

    # seed 5001 binds cheese2 first (the robot starts holding it)
    task, _, plan = solve_instance(generate_instance("double_cheese_burger", 5001))
    goal = [compact_fact(task, atom) for atom in task.problem.goal_pos]
    state, history, left_before = task.init, [], None
    for action in [*plan, None]:
        todo, compact = get_style("todo").prompt(task, state, history=history), compact_prompt(task, state, history=history)
        assert todo.splitlines()[1:] == compact.splitlines()[1:]  # state and history as in the compact style
        true = set(task.true_facts(state)) | set(task.static_facts)
        left = [compact_fact(task, atom) for atom in task.problem.goal_pos if atom not in true]
        assert todo.splitlines()[0] == ("Goal: " + ". ".join(left) + "." if left else "Goal: reached.")
        assert left == [text for text in goal if text in left]  # goal order kept
        assert left_before is None or set(left) <= set(left_before)
        if action is None:
            break
        valid = task.applicable(state)
        assert get_style("todo").action_sentences(task, state, valid) == get_style("compact").action_sentences(task, state, valid)
        left_before, state, history = left, task.apply(state, action), [*history, action]
    assert left == [] and task.is_goal(state)
    first = get_style("todo").prompt(task, task.init).splitlines()[0]
    assert first.startswith("Goal: patty1 on bottombun1. cheese2 on patty1.") and "cooked" not in first


def test_free_prompt_adds_exactly_the_free_stoves_and_boards_to_the_todo_prompt():
    """The "free" style: the todo prompt plus "X free" for each stove and board the state holds
    empty (never a table), and "no stove free" when none is, along optimal cooked_burger and
    lettuce_tomato_sandwich plans, so the model can tell whether a free station is left when
    the ones it sees are taken."""
    from plannerl.tasks.generate import solve_instance
    from plannerl.tasks.styles import get_style

    seen_taken = False
    for task_name, seed in (("cooked_burger", 42), ("cooked_burger", 294), ("lettuce_tomato_sandwich", 84)):
        task, _, plan = solve_instance(generate_instance(task_name, seed))
        state = task.init
        for action in [*plan, None]:
            free, todo = get_style("free").prompt(task, state), get_style("todo").prompt(task, state)
            empty = {atom[1] for atom in task.true_facts(state) if atom[0] == "empty"}
            special = {obj for obj, type_name in task.objects.items() if type_name in ("stove", "board")}
            phrases = free.splitlines()[1].removeprefix("State: ").rstrip(".").split(". ")
            shown = {phrase.split()[0] for phrase in phrases if phrase.endswith(" free") and not phrase.startswith("no ")}
            assert shown == empty & special and special  # the free stoves and boards, no table
            for type_name in {task.objects[obj] for obj in special}:  # none free: said outright
                none_free = not any(task.objects[obj] == type_name for obj in empty & special)
                assert (f"no {type_name} free" in phrases) == none_free
                seen_taken |= none_free
            pruned = ". ".join(p for p in free.splitlines()[1].split(". ") if not p.endswith(" free")
                               and not p.endswith(" free."))
            assert free.splitlines()[0] == todo.splitlines()[0] and free.splitlines()[2:] == todo.splitlines()[2:]
            assert pruned.rstrip(".") == todo.splitlines()[1].rstrip(".")
            if action is not None:
                state = task.apply(state, action)
    assert seen_taken  # some state has every stove or board taken


def test_focus_prompt_writes_each_fluent_fact_once_beside_the_first_goal_fact_about_it():
    """The "focus" style: todo's goal facts left, each followed by the state facts about its
    objects (they are their first argument, at most three per object, not written already);
    every fluent fact of the state is written once, beside a goal fact or in the state line,
    along a Gripper plan (balls carried) and a cheese_sandwich plan (which bread is the base)."""
    from plannerl.planning.oracle import make_oracle
    from plannerl.tasks.render import FOCUS_FACTS, _related, compact_fact
    from plannerl.tasks.styles import get_style

    classic = FIXTURES / "classic" / "gripper"
    gripper = load_task(classic / "domain.pddl", sorted(p for p in classic.glob("*.pddl") if p.name != "domain.pddl")[-1])
    sandwich = generate_instance("cheese_sandwich", 294).load_task()
    for task in (gripper, sandwich):
        state = task.init
        for action in [*make_oracle(task).canonical_plan(), None]:
            goal_line, state_line, last_line = get_style("focus").prompt(task, state).splitlines()
            assert last_line == get_style("todo").prompt(task, state).splitlines()[2]
            related = _related(task, state)

            def phrase(fact, task=task, related=related):
                return compact_fact(task, fact, related)

            true = [f for f in task.true_facts(state) if phrase(f)]
            written: set = set()
            for atom in task.problem.goal_pos:
                if atom in true:  # left out, as in todo
                    continue
                about = [f for obj in dict.fromkeys(atom[1:])
                         for f in [g for g in true if g[1] == obj and g not in written][:FOCUS_FACTS]]
                written.update(about)
                beside = ", now " + ", ".join(phrase(f) for f in about) if about else ""
                assert compact_fact(task, atom) + beside in goal_line
            for fact in true:
                assert (goal_line + " " + state_line).count(" " + phrase(fact)) == 1, fact
                assert (phrase(fact) in state_line) == (fact not in written)
            if action is not None:
                state = task.apply(state, action)
    sandwich_goal = get_style("focus").prompt(sandwich, sandwich.init).splitlines()[0]
    assert sandwich_goal.startswith("Goal: cheese1 on bread2, now cheese1 on table7, bread2 on table8.")


def test_compact_answers_name_a_move_by_what_its_destination_holds():
    """The built-in model's move answers put the destination's items first; other actions and
    the full style keep their ordinary sentences; every compact answer parses back to its action."""
    from plannerl.tasks.actions import parse_action
    from plannerl.tasks.render import compact_action_sentences
    from plannerl.tasks.styles import get_style

    task = generate_instance("burger", 7, extra_stations=(12, 12), distractors=(3, 3)).load_task()
    state = task.init
    for _ in range(6):
        valid = task.applicable(state)
        holds = {}
        for atom in task.true_facts(state):
            if atom[0] == "in":
                holds.setdefault(atom[2], []).append(atom[1])
        for action, sentence in zip(valid, compact_action_sentences(task, state, valid)):
            schema, args = task.actions[action].schema, task.actions[action].args
            if schema == "move":
                items = " and ".join(sorted(holds.get(args[2], []), key=natural_key)) or "nothing"
                assert sentence == f"Move {args[0]} to {items} at {args[2]}"
            else:
                assert sentence == action_sentence(task, action)
            assert parse_action(task, state, f"Action: {sentence}").action == action
        assert get_style("full").action_sentences(task, state, valid) == [action_sentence(task, a) for a in valid]
        state = task.apply(state, valid[-1])
    # a compact answer only means something in its own state: elsewhere it is unparseable, not a guess
    move = next(a for a in task.applicable(task.init) if task.actions[a].schema == "move")
    sentence = compact_action_sentences(task, task.init, [move])[0]
    after = task.apply(task.init, move)
    assert parse_action(task, after, sentence).kind == "unparseable"


def test_a_domain_without_compact_action_templates_answers_with_its_sentences():
    from plannerl.tasks.render import compact_action_sentences

    task = load_task(BLOCKS / "domain.pddl", BLOCKS / "tower3.pddl")
    valid = task.applicable(task.init)
    assert compact_action_sentences(task, task.init, valid) == [action_sentence(task, a) for a in valid]
