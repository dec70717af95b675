"""Conformance scenarios: a declarative federation run whose outcome anyone can check."""

from ._format import Scenario, ScenarioError, load_scenario, parse_scenario
from ._run import run_scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario", "parse_scenario", "run_scenario"]
