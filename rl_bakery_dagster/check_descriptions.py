"""What each check of `timesteps` verifies, what its failure means and how to repair the day.

The UI shows a check's description beside its result; "timestep contract: unique_timestep" told
an operator neither what broke nor what to do. Every description here says the rule, that a
failure blocked the day (nothing written, earlier days untouched) and the repair.
"""

from __future__ import annotations

from rl_bakery_dagster.transforms.day_window import DAY_WINDOW_RULE
from rl_bakery_dagster.transforms.validation import SCHEMA_RULE, UNIQUE_RULE

RULES: dict[str, str] = {
    SCHEMA_RULE: "the day's logs have every column of the timestep contract, with numeric types",
    "env_id_not_null": "every row has its environment (user) id",
    "timestep_id_not_null": "every row has its timestep id",
    "timestep_id_not_negative": "timestep ids are not negative",
    "finite_observation": "every observation column holds finite numbers (no null, NaN or inf)",
    "finite_reward": "every reward is a finite number",
    "bounded_value": "observations and rewards stay within TimestepSchema.max_abs_value",
    "action_in_spec": "every logged action lies in the application's action space",
    "known_step_type": "step_type is 0 (FIRST), 1 (MID) or 2 (LAST)",
    "episode_order": "after an episode's LAST step, the environment's next step is a FIRST",
    "discount_in_unit_interval": "discounts lie in [0, 1]",
    "propensity_in_unit_interval": "logged propensities (action_prob) lie in (0, 1]",
    "increasing_across_days": "an environment's timestep ids keep increasing across midnight",
    "unique_across_days": "no (env id, timestep id) of the day is already stored on an earlier day",
    UNIQUE_RULE: "each (env id, timestep id) occurs once in the day",
    DAY_WINDOW_RULE: "every timestamp falls inside the day (TimestepSchema.day_time_zone)",
}

REPAIR = (
    "A failure blocks the day: timesteps and everything downstream of it write nothing for it, and "
    "earlier days are unchanged. The result's metadata names the column, the number of offending "
    "rows and sample rows. Repair the day's logs in the warehouse (dt=<day>/), then re-materialise "
    "that day; the sensor then continues with the next one."
)


def contract_check_description(rule: str) -> str:
    """The UI description of the `timesteps` check for `rule`."""
    checks = RULES.get(rule, rule.replace("_", " "))
    return f"Timestep contract, rule {rule}: checks that {checks}. {REPAIR}"
