"""The command line: one module per command (typer + rich live here only)."""
