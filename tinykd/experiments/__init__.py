"""Experiments built on the pipeline's stages: sweeps, student search for a board, and
reproductions of published results. Each is a library function with a thin CLI command."""
