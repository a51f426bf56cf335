"""The canary's on-policy verdict, against hand-built logs and a pandas oracle, and its users.

Hand-built days of two policies (`policy_version`): the canary's mean observed return per episode,
the other users', and the episodes that count (those that start on the day and are played whole by
one arm) are computed independently with pandas; the verdicts follow from returns chosen by hand.
"""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from rl_bakery_dagster.application import Application, TimestepSchema
from rl_bakery_dagster.assets.rl_evaluation import SequentialEvaluationConfig, evaluate_canary
from rl_bakery_dagster.evaluation.canary import canary_replicates, canary_users
from rl_bakery_dagster.evaluation.estimators import ACCEPTED, NOT_ENOUGH_EVIDENCE, REFUSED
from rl_bakery_dagster.transforms.decisions import EPISODE, logged_decisions
from rl_bakery_dagster_tests.apps import tiny_cartpole

CANARY, OTHER = "app@2024-01-01#step100", "app@2023-12-30#step50"


def day_of_episodes(episodes: list[tuple[int, str, list[float]]], before_first: int = 0) -> pd.DataFrame:
    """Rows of the timestep contract for consecutive episodes per user: (user, version, rewards of its
    decisions). Each episode is FIRST, one MID per reward but the last, then LAST; `before_first` rows of
    an episode that began the day before open every user's day."""
    rows = []
    clock: dict[int, int] = {}
    for user, version, rewards in episodes:
        if user not in clock:
            clock[user] = 0
            for _ in range(before_first):
                rows.append((user, clock[user], 1, 0.5, version))
                clock[user] += 1
        step_types = [0] + [1] * (len(rewards) - 1) + [2]
        for step_type, reward in zip(step_types, [0.0, *rewards], strict=True):
            rows.append((user, clock[user], step_type, reward, version))
            clock[user] += 1
    frame = pd.DataFrame(rows, columns=["user_id", "ts", "step_type", "reward", "policy_version"])
    frame["x"] = np.linspace(-1, 1, len(frame))
    frame["action"] = 0
    frame["action_prob"] = 0.5
    return frame


SCHEMA = TimestepSchema(
    env_id_columns=("user_id",),
    timestep_column="ts",
    observation_columns=("x",),
    action_prob_column="action_prob",
    policy_version_column="policy_version",
)


def oracle(frame: pd.DataFrame) -> dict[str, tuple[int, float]]:
    """Per arm: (episodes played whole by it that start on the day, their mean summed reward after FIRST)."""
    frame = frame.sort_values(["user_id", "ts"]).copy()
    frame["episode"] = frame.groupby("user_id").step_type.transform(lambda s: (s == 0).cumsum())
    started = frame[(frame.episode >= 1) & (frame.step_type != 0)]
    # the version of an episode's decisions: the rows that chose its actions (all but its last row)
    deciding = frame[(frame.episode >= 1) & (frame.step_type != 2)]
    versions = deciding.groupby(["user_id", "episode"]).policy_version.agg(lambda v: set(v))
    returns = started.groupby(["user_id", "episode"]).reward.sum()
    arms: dict[str, list[float]] = {"canary": [], "other": []}
    for key, value in returns.items():
        (version,) = versions[key] if len(versions[key]) == 1 else (None,)
        if version is not None:
            arms["canary" if version == CANARY else "other"].append(float(value))
    return {arm: (len(values), float(np.mean(values))) for arm, values in arms.items()}


def test_the_canary_arms_match_a_pandas_oracle(spark) -> None:
    episodes = [(u, CANARY, [1.0, 0.0, 2.0]) for u in range(3)] + [(u, OTHER, [1.0] * 6) for u in range(3, 8)]
    episodes += [(1, CANARY, [4.0]), (4, OTHER, [0.5, 0.5])]
    frame = day_of_episodes(episodes, before_first=2)
    # a user whose episode switches policy mid-way counts for neither arm
    mixed = day_of_episodes([(9, OTHER, [1.0, 1.0, 1.0, 1.0])])
    mixed.loc[mixed.ts >= 2, "policy_version"] = CANARY
    frame = pd.concat([frame, mixed], ignore_index=True)
    expected = oracle(frame)
    assert expected["canary"][0] == 4 and expected["other"][0] == 6  # the mixed episode is in neither

    decisions = logged_decisions(spark.createDataFrame(frame), SCHEMA, with_policy_version=True)
    arms = canary_replicates(decisions, ["user_id", EPISODE], CANARY, replicates=50, seed=1)
    assert arms["canary"][0] == expected["canary"][0] and arms["other"][0] == expected["other"][0]
    assert arms["canary_mean"][0] == pytest.approx(expected["canary"][1], rel=1e-12)
    assert arms["other_mean"][0] == pytest.approx(expected["other"][1], rel=1e-12)
    # every replicate resamples whole episodes: its arm means lie within the arms' episode returns
    assert np.nanmin(arms["canary_mean"][1:]) >= 3.0 - 1e-12 and np.nanmax(arms["canary_mean"][1:]) <= 4.0
    assert len(set(np.round(arms["other_mean"][1:], 9))) > 1


def verdict(spark, canary_return: float, other_return: float, episodes: int, **config: object) -> dict:
    """`evaluate_canary` on a day of `episodes` episodes per arm with returns around the given means."""
    rng = np.random.default_rng(5)
    spec = []
    for user in range(2 * episodes):
        mean = canary_return if user < episodes else other_return
        spec.append((user, CANARY if user < episodes else OTHER, list(rng.normal(mean, 1.0, 4) / 4)))
    app = app_with_versions()
    logged = spark.createDataFrame(day_of_episodes(spec))
    settings = SequentialEvaluationConfig(**{"replicates": 200, "relative_tolerance": 0.1, **config})
    return evaluate_canary(app, logged, CANARY, settings)


def app_with_versions() -> Application:
    """An RL application whose logs carry `SCHEMA`'s columns (only its schema is read)."""
    return dataclasses.replace(tiny_cartpole(Path("unused")), schema=SCHEMA)


def test_the_canary_verdicts_follow_the_returns_chosen_by_hand(spark) -> None:
    worse = verdict(spark, 5.0, 20.0, 40)
    assert worse["outcome"] == REFUSED, worse["reason"]
    assert worse["canary_episodes"] == 40 and worse["other_episodes"] == 40
    assert worse["difference"]["upper"] < -worse["tolerance"] < 0
    assert worse["tolerance"] == pytest.approx(0.1 * worse["other_return"])
    assert "confidently worse, refused" in worse["reason"]

    same = verdict(spark, 20.0, 20.0, 40)
    assert same["outcome"] == ACCEPTED, same["reason"]
    assert same["difference"]["lower"] >= -same["tolerance"]

    # the same gap on 6 episodes an arm is below the floor of 10; with a floor of 5 it refuses
    few = verdict(spark, 5.0, 20.0, 6)
    assert few["outcome"] == NOT_ENOUGH_EVIDENCE and "below the floor of 10" in few["reason"]
    lowered = verdict(spark, 5.0, 20.0, 6, min_canary_episodes=5)
    assert lowered["outcome"] == REFUSED, lowered["reason"]

    none = evaluate_canary(
        app_with_versions(),
        spark.createDataFrame(day_of_episodes([(0, OTHER, [1.0, 1.0])] * 12)),
        CANARY,
        SequentialEvaluationConfig(replicates=50),
    )
    assert none["outcome"] == NOT_ENOUGH_EVIDENCE and none["canary_episodes"] == 0
    assert math.isnan(none["canary_return"])


def test_canary_users_are_a_stable_hashed_share_that_changes_with_the_day(spark) -> None:
    users = spark.range(20_000).withColumnRenamed("id", "user_id")
    share = 0.2

    def chosen(day: str) -> set[int]:
        rows = users.filter(canary_users(["user_id"], share, day)).select("user_id").collect()
        return {int(r.user_id) for r in rows}

    first, again, next_day = chosen("2024-01-01"), chosen("2024-01-01"), chosen("2024-01-02")
    sigma = math.sqrt(share * (1 - share) / 20_000)
    assert first == again
    assert abs(len(first) / 20_000 - share) < 5 * sigma
    # a fresh draw each day: the overlap of two independent 20 % draws is about 4 % of users
    assert abs(len(first & next_day) / 20_000 - share**2) < 5 * math.sqrt(share**2 * (1 - share**2) / 20_000)
    assert users.filter(canary_users(["user_id"], 0.5, "2024-01-01")).count() > 0
    assert users.select(F.col("user_id")).count() == 20_000


def test_a_canary_needs_logs_that_name_their_policy_and_a_minority_share() -> None:
    from rl_bakery_dagster.assets.rl_evaluation import canary_plan

    without_versions = tiny_cartpole(Path("unused"))
    warnings: list[str] = []
    assert canary_plan(without_versions, SequentialEvaluationConfig(), warnings.append) is None
    assert (
        len(warnings) == 1 and "policy_version_column" in warnings[0] and "keep_last_accepted" in warnings[0]
    )
    quiet: list[str] = []
    chosen = SequentialEvaluationConfig(on_not_enough_evidence="keep_last_accepted")
    assert canary_plan(without_versions, chosen, quiet.append) is None and not quiet

    plan = canary_plan(app_with_versions(), SequentialEvaluationConfig())
    assert plan is not None and plan.start and plan.share == 0.2
    # only a candidate the logs could not judge goes to a canary, and the canary names what it plays
    started = plan.started(NOT_ENOUGH_EVIDENCE, "2024-01-02", "file:///c", "app@2024-01-02#step9", 0.05)
    assert started == {
        "checkpoint": "2024-01-02",
        "checkpoint_uri": "file:///c",
        "policy_version": "app@2024-01-02#step9",
        "share": 0.2,
        "epsilon": 0.05,
    }
    assert plan.started(ACCEPTED, "2024-01-02", "file:///c", "v", 0.05) is None
    assert plan.started(REFUSED, "2024-01-02", "file:///c", "v", 0.05) is None
    # a canary already playing is still judged, but no new one starts unless canary is chosen
    for config in (chosen, SequentialEvaluationConfig(gate=False)):
        plan = canary_plan(app_with_versions(), config)
        assert plan is not None and not plan.start
        assert plan.started(NOT_ENOUGH_EVIDENCE, "2024-01-02", "file:///c", "v", 0.05) is None

    for share in (0.0, 0.6, -0.1):
        with pytest.raises(ValueError, match="canary_share must lie in"):
            SequentialEvaluationConfig(canary_share=share).validate_choices()
    from rl_bakery_dagster.assets.evaluation import OffPolicyEvaluationConfig

    with pytest.raises(ValueError, match="on_not_enough_evidence must be one of explore"):
        OffPolicyEvaluationConfig(on_not_enough_evidence="canary").validate_choices()  # bandits: no canary
