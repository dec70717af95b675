"""A seeded, deterministic simulator that drives the real protocol core through faults."""

from .world import BREAKABLE, SimReport, simulate

__all__ = ["BREAKABLE", "SimReport", "simulate"]
