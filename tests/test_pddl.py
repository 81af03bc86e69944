"""plannerl's PDDL reader: the same ground task as unified-planning, and one clear line per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ALL_PROBLEMS, BAD, CLASSIC, DOMAINS, problem_id

from plannerl.errors import NoPlanError, PddlError
from plannerl.pddl.reader import check_requirements, find_domain_file, load, parse_domain, parse_problem
from plannerl.pddl.up_bridge import read_problem
from plannerl.planning.planner import load_task

# ------------------------------------------------------------ same ground task as UP


def _atom(node) -> tuple[str, ...]:
    return (node.fluent().name.lower(), *(arg.object().name.lower() for arg in node.args))


def _literals(expressions):
    """(positive atoms, negative atoms) of a conjunction of UP literals."""
    pos, neg, stack = set(), set(), list(expressions)
    while stack:
        node = stack.pop()
        if node.is_and():
            stack.extend(node.args)
        elif node.is_not():
            neg.add(_atom(node.arg(0)))
        elif node.is_fluent_exp():
            pos.add(_atom(node))
        else:
            assert node.is_true(), f"unexpected precondition {node}"
    return pos, neg


def _up_ground_task(problem_path: Path) -> dict[str, tuple[set, set, set, set]]:
    """UP's grounder, then relaxed reachability from UP's initial state (as plannerl grounds):
    `(name arg ...)` -> (positive pre, negative pre, add, delete) as atom tuples."""
    from unified_planning.plans import ActionInstance
    from unified_planning.shortcuts import CompilationKind, Compiler

    problem = read_problem(None, problem_path)
    with Compiler(name="up_grounder") as compiler:
        compiled = compiler.compile(problem, CompilationKind.GROUNDING)
    ground = {}
    for action in compiled.problem.actions:
        lifted = compiled.map_back_action_instance(ActionInstance(action))
        name = "(" + " ".join([lifted.action.name, *(p.object().name for p in lifted.actual_parameters)]).lower() + ")"
        pos, neg = _literals(action.preconditions)
        add = {_atom(e.fluent) for e in action.effects if e.value.bool_constant_value()}
        delete = {_atom(e.fluent) for e in action.effects if not e.value.bool_constant_value()}
        assert not any(e.is_conditional() for e in action.effects)
        ground[name] = (pos, neg, add, delete)
    reached = {_atom(f) for f, v in compiled.problem.initial_values.items() if v.bool_constant_value()}
    reachable: set[str] = set()
    while True:
        new = {name for name, (pos, _, _, _) in ground.items() if name not in reachable and pos <= reached}
        if not new:
            break
        reachable |= new
        for name in new:
            reached |= ground[name][2]
    return {name: ground[name] for name in reachable}


@pytest.mark.parametrize("problem", ALL_PROBLEMS + [BAD / "ok.pddl"], ids=problem_id)
def test_reader_grounds_like_unified_planning(problem):
    task = load_task(None, problem)
    up_actions = _up_ground_task(problem)
    assert {a.pddl for a in task.actions} == set(up_actions)
    facts = set(task.facts)
    for action in task.actions:
        pos, neg, add, delete = up_actions[action.pddl]

        def atoms(mask):
            return {task.facts[k] for k in range(len(task.facts)) if mask >> k & 1}

        assert atoms(action.pre) == pos & facts
        assert atoms(action.neg) == neg & facts
        assert atoms(action.add) == add
        assert atoms(action.delete) == (delete - add) & facts


# ------------------------------------------------------------ what the reader accepts


def test_reader_is_case_insensitive_and_tolerates_comments_bom_and_crlf(tmp_path):
    domain = (CLASSIC / "blocksworld/domain.pddl").read_text().upper().replace("\n", "\r\n")
    (tmp_path / "domain.pddl").write_bytes(b"\xef\xbb\xbf" + domain.encode())
    problem = "; comment\r\n(DEFINE (PROBLEM Two)\t(:DOMAIN blocksworld) ; trailing\r\n (:objects A B) (:init (ontable a) (ontable b) " \
              "(clear a) (clear b) (handempty)) (:goal (on A B)))"
    (tmp_path / "p.pddl").write_text(problem)
    task = load_task(None, tmp_path / "p.pddl")
    assert task.find_action("(PICK-UP A)") is not None
    assert task.name == "two" and set(task.objects) == {"a", "b"}


def test_types_constants_and_equality():
    domain, problem = load(None, CLASSIC / "gripper/p02.pddl")
    assert domain.constants == {"left": "gripper", "right": "gripper"}
    assert problem.objects["left"] == "gripper" and problem.objects["ball1"] == "ball"
    move = next(a for a in domain.actions if a.name == "move")
    assert move.not_equal == (("?from", "?to"),)
    logistics = parse_domain(CLASSIC / "logistics/domain.pddl")
    assert logistics.is_subtype("truck", "physobj") and logistics.is_subtype("airport", "object")
    assert not logistics.is_subtype("package", "vehicle")


def test_domain_is_found_beside_the_problem_by_its_declared_name():
    assert find_domain_file(DOMAINS / "burger.pddl").name == "cooking.pddl"
    assert find_domain_file(BAD / "ok.pddl").name == "domain.pddl"
    with pytest.raises(PddlError, match=r"no_domain.pddl: no file in .* defines \(domain warehouse\)"):
        find_domain_file(BAD / "no_domain.pddl")
    with pytest.raises(PddlError, match="this is a domain file"):
        find_domain_file(DOMAINS / "cooking.pddl")


# ------------------------------------------------------------ bad input: one clear line

BAD_PROBLEMS = [
    ("empty.pddl", r"empty.pddl: empty file"),
    ("binary.pddl", r"binary.pddl: binary data, not a PDDL text file"),
    ("unbalanced.pddl", r"unbalanced.pddl:2: unbalanced parentheses: the '\(' opened here is never closed"),
    ("deep_nesting.pddl", r"deep_nesting.pddl:2: parentheses nested deeper than 64"),
    ("unknown_predicate.pddl", r"unknown_predicate.pddl:6: :goal: unknown predicate clean \(declared: at, hand-empty, holding\)"),
    ("unknown_object.pddl", r"unknown_object.pddl:5: :init: unknown object or constant spoon"),
    ("unknown_type.pddl", r"unknown_type.pddl:4: unknown type utensil \(declared: item, object, place\)"),
    ("wrong_arity.pddl", r"wrong_arity.pddl:6: :goal: predicate at takes 2 arguments, got 1"),
    ("no_domain.pddl", r"no_domain.pddl: no file in .* defines \(domain warehouse\); pass the domain file first"),
]


@pytest.mark.parametrize(("name", "message"), BAD_PROBLEMS, ids=[n for n, _ in BAD_PROBLEMS])
def test_bad_problem_gives_one_line_naming_file_and_line(name, message):
    with pytest.raises(PddlError, match=message) as caught:
        load(None, BAD / name)
    assert "\n" not in str(caught.value)


def test_unsupported_requirement_is_refused_by_name():
    with pytest.raises(PddlError, match=r"unsupported_requirement.pddl:3: requirement :conditional-effects is not supported"):
        parse_domain(BAD / "unsupported_requirement.pddl")
    with pytest.raises(PddlError, match=r"requirement :conditional-effects is not supported"):
        check_requirements(BAD / "unsupported_requirement.pddl")
    assert check_requirements(DOMAINS / "cooking.pddl") == {":strips", ":typing", ":negative-preconditions"}


DOMAIN_HEAD = "(define (domain d) (:requirements :strips :typing) (:types item) (:predicates (p ?x - item) (q ?x - item))\n"
BAD_DOMAINS = [
    ("(:action a :parameters (?x - item) :precondition (or (p ?x) (q ?x)) :effect (p ?x)))",
     r"d.pddl:2: action a: \(or ...\) needs :disjunctive-preconditions"),
    ("(:action a :parameters (?x - item) :precondition (p ?y) :effect (p ?x)))", r"d.pddl:2: action a: unknown variable \?y"),
    ("(:action a :parameters (?x - item) :effect (when (p ?x) (q ?x))))", r"action a: \(when ...\) effects need :conditional-effects"),
    ("(:action a :parameters (?x - item) :effect (increase (cost) 1)))", r"action a: numeric effect \(increase ...\) is not supported"),
    ("(:action a :parameters (?x - tool) :effect (p ?x)))", r"d.pddl:2: unknown type tool"),
    ("(:action a :parameters (?x - item) :precondition (not (p ?x)) :effect (p ?x)))", r"negative condition needs :negative-preconditions"),
    ("(:functions (cost)))", r":functions is not supported"),
    ("(:action a :parameters (?x - item) :effect (p ?x)) (:action a :parameters (?x - item) :effect (q ?x)))",
     r"action a is defined twice"),
]


@pytest.mark.parametrize(("tail", "message"), BAD_DOMAINS, ids=[m.split(":")[-1][:30] for _, m in BAD_DOMAINS])
def test_bad_domain_gives_one_line(tmp_path, tail, message):
    (tmp_path / "d.pddl").write_text(DOMAIN_HEAD + tail)
    with pytest.raises(PddlError, match=message) as caught:
        parse_domain(tmp_path / "d.pddl")
    assert "\n" not in str(caught.value)


def test_problem_mistakes(tmp_path):
    domain = parse_domain(BAD / "domain.pddl")
    cases = [
        ("(define (problem x) (:domain other) (:goal (hand-empty)))", r"problem is for domain other, but the domain file defines shelf"),
        ("(define (problem x) (:domain shelf) (:objects a - item))", r"problem has no \(:goal ...\)"),
        ("(define (problem x) (:domain shelf) (:objects a - item a - place) (:goal (hand-empty)))", r"object a declared twice"),
        ("(define (problem x) (:domain shelf) (:init (not (hand-empty))) (:goal (hand-empty)))", r"\(:init\) lists true atoms only"),
        ("(define (problem x) (:domain shelf) (:objects a - item b - place) (:goal (at b a)))", r"b is a place, but at expects a item"),
        ("(define (problem x) (:domain shelf) (:requirements :fluents) (:goal (hand-empty)))", r"requirement :fluents is not supported"),
        ("(define (problem x) (:domain shelf) (:goal (hand-empty))) extra", r"unexpected 'extra' after the end"),
        ("(define (domain shelf))", r"this is a domain file, expected a problem"),
    ]
    for text, message in cases:
        (tmp_path / "p.pddl").write_text(text)
        with pytest.raises(PddlError, match=message):
            parse_problem(tmp_path / "p.pddl", domain)


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(PddlError, match="nothing.pddl: no such file"):
        parse_domain(tmp_path / "nothing.pddl")
    with pytest.raises(PddlError, match="is a directory"):
        parse_domain(tmp_path)


def test_unreachable_goal_is_found_while_grounding():
    with pytest.raises(NoPlanError, match=r"goal \(holding plate\) is unreachable even ignoring delete effects"):
        load_task(None, BAD / "unreachable_goal.pddl")
