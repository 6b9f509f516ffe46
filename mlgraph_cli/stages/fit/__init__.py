"""Stage: ``mlgraph fit``, the stages composed for the common case (issue 20).

Annotations (and images) in; a trained, evaluated run out, with every stage's file kept in one
folder so that any stage can be run again by hand:

split (when asked) -> build-graph -> embed -> extract (train, val, test) -> train -> evaluate (test, once)

- :class:`~mlgraph_cli.core.training.fit_config.FitConfig`: the few settings of fit itself (split
  fractions, seed, folder), in core so the command can show their defaults without importing this stage.
- ``splits``: train / val / test drawn from one annotation file (fractions, or its split column),
  written as one-hot CSV files that every stage reads.
- ``manifest``: ``fit.json``, what each step ran on and made, so a rerun skips the steps that are
  up to date and resumes the one that was interrupted.
- ``plan``: the steps as the commands a user would type, and what a rerun does with each.

The command (cli/fit.py) runs each step as a command, printed first, as ``mlgraph demo`` does;
nothing here imports torch, and this module imports nothing, so ``mlgraph --help`` stays fast.
"""
