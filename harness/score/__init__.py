"""Scoring a run: feature extractors (`extractors`), the images scored against (`inputs`), the metrics of every
(system, settings) group with bootstrap intervals (`run`)."""
