"""The `plannerl` command: a Typer app whose commands only parse arguments and call the library.

Heavy libraries (unified-planning, torch, transformers, TRL) are imported inside the commands
that use them, so `plannerl --help` stays fast.
"""

from __future__ import annotations

import sys

import typer

from plannerl.errors import LimitError, PlannerlError

app = typer.Typer(
    name="plannerl",
    help="Plan PDDL cooking tasks, build single-turn datasets, train and evaluate LLM agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain click help: rendering help through rich.markdown costs ~0.15 s on every --help
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    """Plan PDDL cooking tasks, build single-turn datasets, train and evaluate LLM agents."""


def _register() -> None:
    from plannerl.cli import data, evaluate, plan, train

    for module in (plan, data, evaluate, train):
        module.register(app)


_register()


def run() -> None:
    """Console entry point: user mistakes become one line on stderr and a non-zero exit."""
    try:
        code = app(standalone_mode=False)  # typer.Exit's code (typer >= 0.26 also returns 130 for Ctrl-C; older raise Abort)
        if isinstance(code, int) and code:
            if code == 130:
                print("plannerl: interrupted", file=sys.stderr)
            sys.exit(code)
    except PlannerlError as exc:
        print(f"plannerl: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("plannerl: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except MemoryError:
        print("plannerl: error: out of memory: lower --max-states (or the sizes asked for) or free memory", file=sys.stderr)
        sys.exit(LimitError.exit_code)
    except Exception as exc:  # usage errors arrive here in non-standalone mode: click's, or typer's own copy of click
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            print("plannerl: aborted", file=sys.stderr)
            sys.exit(130)
        raise
