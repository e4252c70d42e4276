"""The threat model: the scenario YAML read into frozen records (`Scenario` and its sections).

Imports: `core`, and `attacks` for the attack specs a scenario lists.
"""

from __future__ import annotations

from medaudit.scenario.threat_model import (
    CardFields,
    DataSection,
    FitnessSection,
    GateSection,
    Init,
    Scenario,
    SurrogateRow,
    TrainingSection,
    load_scenario,
    scenario_json_schema,
)

__all__ = [
    "CardFields",
    "DataSection",
    "FitnessSection",
    "GateSection",
    "Init",
    "load_scenario",
    "Scenario",
    "scenario_json_schema",
    "SurrogateRow",
    "TrainingSection",
]
