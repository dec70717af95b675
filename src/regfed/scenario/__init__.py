"""Conformance scenarios: a declarative federation run whose outcome anyone can check."""

from ._databases import DatabaseChoiceError
from ._format import Scenario, ScenarioError, load_scenario, parse_scenario
from ._run import run_scenario

__all__ = [
    "DatabaseChoiceError",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_scenario",
    "run_scenario",
]
