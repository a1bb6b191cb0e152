"""Reporting on results: metrics files, comparisons with the paper, sweeps, ablations, charts and overlays."""
