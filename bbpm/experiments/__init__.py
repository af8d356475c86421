"""Experiment-specific plumbing of the notebooks (sweeps, tables, figures), tested in tests/."""
