"""The kaos command line (typer + rich)."""
