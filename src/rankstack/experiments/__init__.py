"""Experiments around the runtime pipeline: training a pipeline, offline evaluation and log replay, simulation
judging, the evaluate and multi-task runs, and the artifact version registry (imported lazily: nothing here loads
until a module is named)."""
