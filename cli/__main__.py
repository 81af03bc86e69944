"""`python -m plannerl.cli` runs the same command as `plannerl`."""

from plannerl.cli.main import run

run()
