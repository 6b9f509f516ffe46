"""The library: everything mlgraph computes. Never imports typer or rich."""
