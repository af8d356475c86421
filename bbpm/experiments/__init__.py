"""Sweeps, tables and figures of the book's experiments, one module per experiment."""
