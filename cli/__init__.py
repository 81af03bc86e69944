"""plannerl's command line (installed as the `plannerl.cli` package)."""
