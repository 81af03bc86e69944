"""Reading PDDL text into plain domain and problem records.

plannerl reads the STRIPS fragment it plans with (typing, negative preconditions, equality,
constants) with its own small reader: it is fast enough to load a thousand generated problems
a second, and every error names the file and line at fault. unified-planning reads the same
files for the external planners and the validator (`plannerl.pddl.up_bridge`), and the tests check
that both readers ground every shipped domain to the same task.

Atoms are plain tuples `(predicate, arg, ...)`; variables keep their leading `?`. Names are
case-insensitive in PDDL, so everything is lower-cased.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from plannerl.errors import PddlError

Atom = tuple[str, ...]

SUPPORTED_REQUIREMENTS = {":strips", ":typing", ":negative-preconditions", ":equality"}
MAX_NESTING = 64
MAX_FILE_BYTES = 16 * 1024 * 1024

_TOKEN = re.compile(r"\(|\)|[^\s()]+")


@dataclass(frozen=True)
class SExpr:
    """A parenthesised list with the line it starts on, for error messages."""

    items: tuple
    line: int


@dataclass(frozen=True)
class ActionSchema:
    """A lifted action: typed parameters, precondition literals and STRIPS effects."""

    name: str
    params: tuple[tuple[str, str], ...]
    pre_pos: tuple[Atom, ...]
    pre_neg: tuple[Atom, ...]
    equal: tuple[tuple[str, str], ...]
    not_equal: tuple[tuple[str, str], ...]
    add: tuple[Atom, ...]
    delete: tuple[Atom, ...]
    line: int


@dataclass
class Domain:
    name: str
    path: str
    requirements: set[str]
    supertype: dict[str, str]
    constants: dict[str, str]
    predicates: dict[str, tuple[str, ...]]
    actions: list[ActionSchema]

    def is_subtype(self, child: str, parent: str) -> bool:
        while True:
            if child == parent:
                return True
            if child not in self.supertype or child == "object":
                return False
            child = self.supertype[child]


@dataclass
class Problem:
    name: str
    path: str
    domain_name: str
    objects: dict[str, str]
    init: set[Atom]
    goal_pos: tuple[Atom, ...]
    goal_neg: tuple[Atom, ...]
    text: str = field(repr=False, default="")


def read_text_file(path: str | Path, what: str, limit: int) -> str:
    """A user's text file as str; a missing, folder, oversized, binary or non-UTF-8 file is one PddlError line.

    Shared by the PDDL and plan-file readers, so hostile files are refused the same way. The
    size is checked before reading, so a huge file costs nothing.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limit:
            raise PddlError(f"file is {size} bytes, over the {limit} byte limit", str(path))
        data = path.read_bytes()
    except IsADirectoryError:
        raise PddlError(f"is a directory, not a {what}", str(path)) from None
    except FileNotFoundError:
        raise PddlError("no such file", str(path)) from None
    except OSError as exc:
        raise PddlError(f"cannot read: {exc.strerror}", str(path)) from None
    if b"\x00" in data:
        raise PddlError(f"binary data, not a {what}", str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PddlError(f"not UTF-8 text (byte {exc.start})", str(path)) from None
    return text.removeprefix("\ufeff")  # a byte-order mark some editors write


def read_text(path: str | Path) -> str:
    """The file's text, refusing what is not a readable, non-empty PDDL text file."""
    text = read_text_file(path, "PDDL text file", MAX_FILE_BYTES)
    if not strip_comments(text).strip():
        raise PddlError("empty file: expected (define ...)", str(path))
    return text


def strip_comments(text: str) -> str:
    return re.sub(r";[^\n]*", "", text)


def parse_sexpr(text: str, path: str) -> SExpr:
    """Parse the single top-level list of a PDDL file, iteratively (no recursion limit)."""
    stack: list[tuple[list, int]] = []
    result: SExpr | None = None
    for line_no, line in enumerate(text.split("\n"), start=1):
        for token in _TOKEN.findall(line.split(";", 1)[0]):
            if result is not None:
                raise PddlError(f"unexpected {token!r} after the end of (define ...)", path, line_no)
            if token == "(":
                if len(stack) >= MAX_NESTING:
                    raise PddlError(f"parentheses nested deeper than {MAX_NESTING}", path, line_no)
                stack.append(([], line_no))
            elif token == ")":
                if not stack:
                    raise PddlError("unbalanced ')' with no matching '('", path, line_no)
                items, start = stack.pop()
                node = SExpr(tuple(items), start)
                if stack:
                    stack[-1][0].append(node)
                else:
                    result = node
            elif not stack:
                raise PddlError(f"unexpected {token!r} outside parentheses", path, line_no)
            else:
                stack[-1][0].append(token.lower())
    if stack:
        missing = f"{len(stack)} ')' missing" if len(stack) > 1 else "one ')' missing"
        raise PddlError(f"unbalanced parentheses: the '(' opened here is never closed ({missing} at the end of the file)",
                        path, stack[-1][1])
    if result is None:
        raise PddlError("no (define ...) found", path)
    return result


def _expect_define(root: SExpr, kind: str, path: str) -> tuple[str, list]:
    items = root.items
    if not items or items[0] != "define":
        raise PddlError("expected (define ...)", path, root.line)
    if len(items) < 2 or not isinstance(items[1], SExpr) or len(items[1].items) != 2 or items[1].items[0] != kind:
        other = "problem" if kind == "domain" else "domain"
        if len(items) > 1 and isinstance(items[1], SExpr) and items[1].items[:1] == (other,):
            raise PddlError(f"this is a {other} file, expected a {kind}", path, root.line)
        raise PddlError(f"expected ({kind} NAME) after define", path, root.line)
    name = items[1].items[1]
    if not isinstance(name, str):
        raise PddlError(f"the {kind} name must be a word", path, items[1].line)
    return name, list(items[2:])


def _typed_list(items: tuple, path: str, line: int) -> list[tuple[str, str]]:
    """`a b - t c` -> [(a, t), (b, t), (c, object)]."""
    result: list[tuple[str, str]] = []
    pending: list[str] = []
    i = 0
    while i < len(items):
        item = items[i]
        if isinstance(item, SExpr):
            if item.items[:1] == ("either",):
                raise PddlError("(either ...) types are not supported", path, item.line)
            raise PddlError("expected a name in a typed list, found a parenthesised list", path, item.line)
        if item == "-":
            if i + 1 >= len(items) or not isinstance(items[i + 1], str) or not pending:
                raise PddlError("'-' must stand between names and a type", path, line)
            result.extend((name, items[i + 1]) for name in pending)
            pending = []
            i += 2
            continue
        pending.append(item)
        i += 1
    result.extend((name, "object") for name in pending)
    return result


def _section(item, path: str) -> SExpr:
    if not isinstance(item, SExpr) or not item.items or not isinstance(item.items[0], str):
        line = item.line if isinstance(item, SExpr) else None
        raise PddlError(f"expected a (:section ...), found {_show(item)}", path, line)
    return item


def _names(names, limit: int = 12) -> str:
    """`a, b, c` for an error message, cut short after `limit` names."""
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "") if names else "none"


def _show(item) -> str:
    if isinstance(item, SExpr):
        head = item.items[0] if item.items and isinstance(item.items[0], str) else ""
        return f"({head} ...)"
    return repr(item)


def parse_domain(path: str | Path) -> Domain:
    path = str(path)
    text = read_text(path)
    name, sections = _expect_define(parse_sexpr(text, path), "domain", path)
    domain = Domain(name, path, {":strips"}, {"object": "object"}, {}, {}, [])
    for raw in sections:
        section = _section(raw, path)
        key, body = section.items[0], section.items[1:]
        if key == ":requirements":
            domain.requirements |= _check_requirements(section, path)
        elif key == ":types":
            for child, parent in _typed_list(body, path, section.line):
                if child == "object":
                    continue
                domain.supertype[child] = parent
            for child, parent in domain.supertype.items():
                if parent not in domain.supertype:
                    raise PddlError(f"type {child} has unknown parent type {parent}", path, section.line)
            _check_type_cycles(domain, path, section.line)
        elif key == ":constants":
            for const, type_name in _typed_list(body, path, section.line):
                _check_type(domain, type_name, path, section.line)
                domain.constants[const] = type_name
        elif key == ":predicates":
            for pred in body:
                if not isinstance(pred, SExpr) or not pred.items or not isinstance(pred.items[0], str):
                    raise PddlError(f"expected a predicate like (name ?x - type), found {_show(pred)}", path, section.line)
                params = _typed_list(pred.items[1:], path, pred.line)
                for var, type_name in params:
                    _check_variable(var, path, pred.line)
                    _check_type(domain, type_name, path, pred.line)
                domain.predicates[pred.items[0]] = tuple(t for _, t in params)
        elif key == ":action":
            domain.actions.append(_parse_action(domain, section, path))
        elif key in (":functions", ":durative-action", ":derived", ":process", ":event", ":constraints"):
            raise PddlError(f"{key} is not supported (plannerl plans with STRIPS actions)", path, section.line)
        else:
            raise PddlError(f"unknown domain section {key}", path, section.line)
    names = [a.name for a in domain.actions]
    for action_name in names:
        if names.count(action_name) > 1:
            raise PddlError(f"action {action_name} is defined twice", path)
    return domain


def _check_requirements(section: SExpr, path: str) -> set[str]:
    """The requirements a (:requirements ...) section declares; an unsupported one is refused by name."""
    found = set()
    for req in section.items[1:]:
        if not isinstance(req, str) or not req.startswith(":"):
            raise PddlError(f"requirements must be names like :strips, found {_show(req)}", path, section.line)
        if req not in SUPPORTED_REQUIREMENTS:
            supported = " ".join(sorted(SUPPORTED_REQUIREMENTS))
            raise PddlError(f"requirement {req} is not supported (plannerl supports {supported})", path, section.line)
        found.add(req)
    return found


def check_requirements(path: str | Path) -> set[str]:
    """The requirements a domain or problem file declares, refusing unsupported ones by name.

    For readers other than plannerl's own (unified-planning accepts requirements it then never
    checks), so that every route into plannerl refuses the same files.
    """
    path = str(path)
    root = parse_sexpr(read_text(path), path)
    found: set[str] = set()
    for item in root.items:
        if isinstance(item, SExpr) and item.items[:1] == (":requirements",):
            found |= _check_requirements(item, path)
    return found


def _check_type_cycles(domain: Domain, path: str, line: int) -> None:
    for start in domain.supertype:
        seen = {start}
        node = start
        while node != "object":
            node = domain.supertype[node]
            if node in seen:
                raise PddlError(f"type {start} is its own ancestor", path, line)
            seen.add(node)


def _check_type(domain: Domain, type_name: str, path: str, line: int) -> None:
    if type_name not in domain.supertype:
        if ":typing" not in domain.requirements and type_name != "object":
            raise PddlError(f"type {type_name} used but :typing is not required", path, line)
        raise PddlError(f"unknown type {type_name} (declared: {_names(domain.supertype)})", path, line)


def _check_variable(var: str, path: str, line: int) -> None:
    if not var.startswith("?") or len(var) < 2:
        raise PddlError(f"expected a variable like ?x, found {var!r}", path, line)


def _parse_action(domain: Domain, section: SExpr, path: str) -> ActionSchema:
    body = section.items[1:]
    if not body or not isinstance(body[0], str):
        raise PddlError("an action needs a name", path, section.line)
    name = body[0]
    fields: dict[str, object] = {}
    rest = list(body[1:])
    while rest:
        key = rest.pop(0)
        if not isinstance(key, str) or not key.startswith(":"):
            raise PddlError(f"action {name}: expected :parameters, :precondition or :effect, found {_show(key)}", path, section.line)
        if not rest:
            raise PddlError(f"action {name}: {key} has no value", path, section.line)
        fields[key] = rest.pop(0)
    unknown = set(fields) - {":parameters", ":precondition", ":effect"}
    if unknown:
        raise PddlError(f"action {name}: unknown field {sorted(unknown)[0]}", path, section.line)
    params_expr = fields.get(":parameters", SExpr((), section.line))
    if not isinstance(params_expr, SExpr):
        raise PddlError(f"action {name}: :parameters must be a list", path, section.line)
    params = _typed_list(params_expr.items, path, params_expr.line)
    scope: dict[str, str] = {}
    for var, type_name in params:
        _check_variable(var, path, params_expr.line)
        _check_type(domain, type_name, path, params_expr.line)
        if var in scope:
            raise PddlError(f"action {name}: parameter {var} appears twice", path, params_expr.line)
        scope[var] = type_name
    context = f"action {name}"
    pos, neg, eq, neq = _parse_condition(domain, fields.get(":precondition"), scope, path, context)
    add, delete = _parse_effect(domain, fields.get(":effect"), scope, path, context)
    return ActionSchema(name, tuple(params), pos, neg, eq, neq, add, delete, section.line)


def _flatten_and(expr, path: str) -> list:
    """The conjuncts of `(and ...)`, a single literal, or nothing for `()` / absent."""
    if expr is None:
        return []
    if not isinstance(expr, SExpr):
        raise PddlError(f"expected a condition in parentheses, found {expr!r}", path)
    if not expr.items:
        return []
    if expr.items[0] == "and":
        out = []
        for part in expr.items[1:]:
            out.extend(_flatten_and(part, path))
        return out
    return [expr]


_UNSUPPORTED_CONDITIONS = {
    "or": ":disjunctive-preconditions",
    "imply": ":disjunctive-preconditions",
    "exists": ":existential-preconditions",
    "forall": ":universal-preconditions",
    "when": ":conditional-effects",
}


def _parse_condition(domain, expr, scope, path, context):
    pos: list[Atom] = []
    neg: list[Atom] = []
    eq: list[tuple[str, str]] = []
    neq: list[tuple[str, str]] = []
    for lit in _flatten_and(expr, path):
        negated = lit.items[0] == "not"
        if negated:
            if len(lit.items) != 2 or not isinstance(lit.items[1], SExpr):
                raise PddlError(f"{context}: (not ...) takes exactly one condition", path, lit.line)
            if ":negative-preconditions" not in domain.requirements and lit.items[1].items[:1] != ("=",):
                raise PddlError(f"{context}: negative condition needs :negative-preconditions", path, lit.line)
            lit = lit.items[1]
        head = lit.items[0] if lit.items else None
        if head == "=":
            if len(lit.items) != 3 or not all(isinstance(x, str) for x in lit.items[1:]):
                raise PddlError(f"{context}: (= a b) takes two names", path, lit.line)
            for term in lit.items[1:]:
                _term_type(domain, term, scope, path, lit.line, context)
            (neq if negated else eq).append((lit.items[1], lit.items[2]))
            continue
        if head in _UNSUPPORTED_CONDITIONS:
            needs = _UNSUPPORTED_CONDITIONS[head]
            raise PddlError(f"{context}: ({head} ...) needs {needs}, which plannerl does not support", path, lit.line)
        atom = _parse_atom(domain, lit, scope, path, context)
        (neg if negated else pos).append(atom)
    return tuple(pos), tuple(neg), tuple(eq), tuple(neq)


def _parse_effect(domain, expr, scope, path, context):
    add: list[Atom] = []
    delete: list[Atom] = []
    for lit in _flatten_and(expr, path):
        head = lit.items[0] if lit.items else None
        if head in ("forall", "when"):
            needs = _UNSUPPORTED_CONDITIONS[head]
            raise PddlError(f"{context}: ({head} ...) effects need {needs}, which plannerl does not support", path, lit.line)
        if head in ("increase", "decrease", "assign", "scale-up", "scale-down"):
            raise PddlError(f"{context}: numeric effect ({head} ...) is not supported", path, lit.line)
        if head == "not":
            if len(lit.items) != 2 or not isinstance(lit.items[1], SExpr):
                raise PddlError(f"{context}: (not ...) takes exactly one atom", path, lit.line)
            delete.append(_parse_atom(domain, lit.items[1], scope, path, context))
        else:
            add.append(_parse_atom(domain, lit, scope, path, context))
    return tuple(add), tuple(delete)


def _term_type(domain: Domain, term: str, scope: dict[str, str], path: str, line: int, context: str) -> str:
    if term.startswith("?"):
        if term not in scope:
            raise PddlError(f"{context}: unknown variable {term}", path, line)
        return scope[term]
    if term in scope:
        return scope[term]
    if term in domain.constants:
        return domain.constants[term]
    raise PddlError(f"{context}: unknown object or constant {term}", path, line)


def _parse_atom(domain: Domain, lit: SExpr, scope: dict[str, str], path: str, context: str) -> Atom:
    if not lit.items or not isinstance(lit.items[0], str):
        raise PddlError(f"{context}: expected an atom like (predicate arg ...), found {_show(lit)}", path, lit.line)
    pred, args = lit.items[0], lit.items[1:]
    if pred not in domain.predicates:
        raise PddlError(f"{context}: unknown predicate {pred} (declared: {_names(domain.predicates)})", path, lit.line)
    expected = domain.predicates[pred]
    if len(args) != len(expected):
        raise PddlError(f"{context}: predicate {pred} takes {len(expected)} arguments, got {len(args)}", path, lit.line)
    for arg, want in zip(args, expected):
        if not isinstance(arg, str):
            raise PddlError(f"{context}: arguments of {pred} must be names, found {_show(arg)}", path, lit.line)
        have = _term_type(domain, arg, scope, path, lit.line, context)
        if not (domain.is_subtype(have, want) or domain.is_subtype(want, have)):
            raise PddlError(f"{context}: {arg} is a {have}, but {pred} expects a {want} there", path, lit.line)
    return (pred, *args)


def parse_problem(path: str | Path, domain: Domain, text: str | None = None) -> Problem:
    """Parse a problem file; `text` given means the problem is held in memory and `path` only names it."""
    path = str(path)
    text = read_text(path) if text is None else text
    name, sections = _expect_define(parse_sexpr(text, path), "problem", path)
    domain_name = None
    objects: dict[str, str] = dict(domain.constants)
    init: set[Atom] = set()
    goal_pos: tuple[Atom, ...] = ()
    goal_neg: tuple[Atom, ...] = ()
    goal_seen = False
    for raw in sections:
        section = _section(raw, path)
        key, body = section.items[0], section.items[1:]
        if key == ":domain":
            if len(body) != 1 or not isinstance(body[0], str):
                raise PddlError("(:domain NAME) takes one name", path, section.line)
            domain_name = body[0]
            if domain_name != domain.name:
                raise PddlError(f"problem is for domain {domain_name}, but the domain file defines {domain.name}", path, section.line)
        elif key == ":requirements":
            _check_requirements(section, path)
        elif key == ":objects":
            for obj, type_name in _typed_list(body, path, section.line):
                _check_type(domain, type_name, path, section.line)
                if obj in objects and objects[obj] != type_name:
                    raise PddlError(f"object {obj} declared twice with types {objects[obj]} and {type_name}", path, section.line)
                objects[obj] = type_name
        elif key == ":init":
            for atom in body:
                if not isinstance(atom, SExpr):
                    raise PddlError(f"expected an atom in :init, found {atom!r}", path, section.line)
                if atom.items[:1] == ("=",) or atom.items[:1] == ("not",):
                    raise PddlError(f"(:init) lists true atoms only, found {_show(atom)}", path, atom.line)
                init.add(_parse_atom(domain, atom, objects, path, ":init"))
        elif key == ":goal":
            if len(body) != 1:
                raise PddlError("(:goal ...) takes one condition", path, section.line)
            pos, neg, eq, neq = _parse_condition(domain, body[0], objects, path, ":goal")
            for a, b in eq:
                if a != b:
                    raise PddlError(f":goal: (= {a} {b}) can never hold", path, section.line)
            for a, b in neq:
                if a == b:
                    raise PddlError(f":goal: (not (= {a} {b})) can never hold", path, section.line)
            goal_pos, goal_neg, goal_seen = pos, neg, True
        elif key in (":metric", ":constraints"):
            if key == ":metric" and "total-cost" not in str(body) and "total-time" not in str(body):
                continue
            raise PddlError(f"{key} is not supported (plannerl minimises plan length)", path, section.line)
        else:
            raise PddlError(f"unknown problem section {key}", path, section.line)
    if domain_name is None:
        raise PddlError("problem has no (:domain NAME)", path)
    if not goal_seen:
        raise PddlError("problem has no (:goal ...)", path)
    return Problem(name, path, domain_name, objects, init, goal_pos, goal_neg, text)


_DOMAIN_DECL = re.compile(r"\(\s*:domain\s+([^\s()]+)\s*\)", re.IGNORECASE)
_DOMAIN_DEF = re.compile(r"\(\s*define\s*\(\s*domain\s+([^\s()]+)\s*\)", re.IGNORECASE)


def find_domain_file(problem_path: str | Path) -> Path:
    """The domain file beside a problem, found by the `(:domain NAME)` the problem declares."""
    problem_path = Path(problem_path)
    text = strip_comments(read_text(problem_path))
    match = _DOMAIN_DECL.search(text)
    if match is None:
        if _DOMAIN_DEF.search(text):
            raise PddlError("this is a domain file; give a problem file (its domain is found beside it)", str(problem_path))
        raise PddlError("no (:domain NAME) declared, so its domain file cannot be found", str(problem_path))
    wanted = match.group(1).lower()
    folder = problem_path.parent
    for candidate in sorted(folder.glob("*.pddl")):
        if candidate.resolve() == problem_path.resolve():
            continue
        try:
            head = strip_comments(candidate.read_text(errors="replace")[:4096])
        except OSError:
            continue
        found = _DOMAIN_DEF.search(head)
        if found and found.group(1).lower() == wanted:
            return candidate
    raise PddlError(f"no file in {folder}/ defines (domain {wanted}); pass the domain file first", str(problem_path))


def load(domain_path: str | Path | None, problem_path: str | Path) -> tuple[Domain, Problem]:
    """Parse a problem and its domain (found beside the problem when not given)."""
    if domain_path is None:
        domain_path = find_domain_file(problem_path)
    domain = parse_domain(domain_path)
    return domain, parse_problem(problem_path, domain)


def is_domain_file(path: str | Path) -> bool:
    """True when the file defines a domain (so a command's first argument is DOMAIN, not a problem)."""
    return re.search(r"\(\s*define\s*\(\s*domain\s", strip_comments(read_text(path)), re.IGNORECASE) is not None
