"""The RL gate's canary through Dagster: candidates the off-policy estimates cannot judge are played to a
share of users for a day and judged on-policy on that day's logs.

Three days of a tiny CartPole DQN (lag 1) whose logs name the policy of each row. The evidence floor
is set where no day reaches it, so every candidate is 'not enough evidence' off-policy and goes to a
canary of half the players. Day 1's candidate is an untrained network (seed 7: its greedy policy
mostly pushes one way, a sabotage); day 2's learned from day 1's random play. The simulator plays each
canary (its checkpoint epsilon-greedy, as `action_batch` deploys it) beside uniform random play, which
stays deployed until a checkpoint is accepted. Day 2 must refuse the sabotage's canary, day 3 accept
the trained one's and deploy it to everyone else. The simulator's true returns are the oracle: the
sabotage is truly worse than random play by more than the tolerance, the trained candidate better.
`action_batch` must give the canary's share of the population the canary's actions.
"""

import dataclasses
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import tensorflow as tf

from rl_bakery_dagster.application import ParquetWarehouse, TrajectorySettings
from rl_bakery_dagster.assets.evaluation import EVALUATION_RECORD, GATE_CHECK, deployment_record
from rl_bakery_dagster.checkpoint_format import GREEDY_POLICY
from rl_bakery_dagster.evaluation.estimators import ACCEPTED, NOT_ENOUGH_EVIDENCE, REFUSED
from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS
from rl_bakery_dagster.examples.gym_simulator import (
    BatchedGym,
    canary_envs,
    deployed_policy,
    random_policy,
    split_policy,
    tf_policy,
    write_day,
)
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster.resources.io_managers import read_json
from rl_bakery_dagster_tests.apps import START, definitions, stored, tiny_cartpole, true_returns

DAYS = [shift_day(START, offset) for offset in range(3)]
PLAYERS, STEPS, USERS, SHARE, TOLERANCE = 64, 100, 2000, 0.5, 0.2
RANDOM = "cartpole@uniform_random"


def test_canaries_refuse_a_sabotage_and_accept_a_trained_candidate_on_policy(spark, home: Path) -> None:
    app = tiny_cartpole(
        home,
        fc_layer_params=[64],
        batch_size=64,
        train_steps_per_day=1500,
        target_update_period=100,
        epsilon_greedy=0.1,
        seed=7,
    )
    schema = dataclasses.replace(app.schema, policy_version_column="policy_version")
    app = dataclasses.replace(
        app,
        schema=schema,
        trajectory=TrajectorySettings(n_step=1, lookback_days=1, lag_days=1, window_days=1),
        population=ParquetWarehouse(str(home / "population")),
    )
    rng = np.random.default_rng(3)
    users = pd.DataFrame(rng.uniform(-0.2, 0.2, (USERS, 4)), columns=list(OBSERVATION_COLUMNS))
    users.insert(0, "user_id", np.arange(USERS, dtype=np.int64))
    for day in DAYS:
        write_day(users, str(home / "population"), day)
    job = definitions(home, app).resolve_job_def(DAILY_JOB)
    gate = {
        "replicates": 100,
        "relative_tolerance": TOLERANCE,
        "estimator": "wdr",
        "fqe_train_steps": 0,
        "min_effective_sample_size": 1e6,  # no candidate is judged off-policy: each goes to a canary
        "wdr_refuses_without_floor": False,
        "canary_share": SHARE,
    }
    product = BatchedGym("CartPole-v0", PLAYERS, seed=0)
    records: dict[str, dict] = {}
    checks = []
    canary = None
    for offset, day in enumerate(DAYS):
        others = random_policy(product.action_space, offset)
        in_canary = np.zeros(PLAYERS, dtype=bool)
        policy = others
        if canary is not None:  # the product plays what action_batch deployed: the canary to its share
            in_canary = canary_envs(PLAYERS, canary["share"], seed=offset)
            tried = deployed_policy(canary["checkpoint_uri"], 2, seed=100 + offset)
            policy = split_policy(others, tried, in_canary)
        logs = product.log(policy, STEPS, OBSERVATION_COLUMNS)
        canary_version = canary["policy_version"] if canary else RANDOM
        logs["policy_version"] = np.where(in_canary[logs.user_id.to_numpy()], canary_version, RANDOM)
        write_day(logs, str(home / "warehouse"), day)
        result = job.execute_in_process(
            partition_key=day, run_config={"ops": {"cartpole__policy_evaluation": {"config": gate}}}
        )
        assert result.success
        records[day] = read_json(str(stored(home, "cartpole", "policy_evaluation", day) / EVALUATION_RECORD))
        canary = records[day]["canary"]
        checks += [
            e.asset_check_evaluation_data
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
            and e.asset_check_evaluation_data.check_name == GATE_CHECK
        ]
    sabotaged, trained, last = DAYS
    summary = {d: (r["outcome"], r["canary_judged"], r["deployed_checkpoint"]) for d, r in records.items()}

    # off-policy, no candidate has enough evidence: each is played to a canary the next day
    assert [r["outcome"] for r in records.values()] == [NOT_ENOUGH_EVIDENCE] * 3, summary
    assert [r["canary"]["checkpoint"] for r in records.values()] == DAYS
    assert all("to a canary of 50% of users" in r["deployment"] for r in records.values())
    assert records[sabotaged]["canary_judged"] is None

    refused, accepted = records[trained]["canary_judged"], records[last]["canary_judged"]
    assert refused["checkpoint"] == sabotaged and refused["outcome"] == REFUSED, refused["reason"]
    assert accepted["checkpoint"] == trained and accepted["outcome"] == ACCEPTED, accepted["reason"]
    assert refused["other_episodes"] >= 10 and accepted["canary_episodes"] >= 10
    # nothing accepted before day 3: uniform random stays deployed; then the trained canary is
    assert [r["deployed_checkpoint"] for r in records.values()] == [None, None, trained], summary
    assert records[last]["last_accepted_checkpoint"] == trained
    assert f"agent_checkpoint[{trained}] accepted" in checks[-1].metadata["canary_verdicts"].value

    # the oracle: the simulator's true returns, each candidate played as deployed, against random play
    random_return, truth = true_returns(home, [sabotaged, trained])
    assert truth[sabotaged] < (1 - TOLERANCE) * random_return < random_return < truth[trained], truth

    # action_batch[day 1] gave the canary's share of users the sabotage's epsilon-greedy actions
    batch = pd.read_parquet(stored(home, "cartpole", "action_batch", sabotaged)).sort_values("user_id")
    version = records[sabotaged]["canary"]["policy_version"]
    in_batch_canary = (batch.policy_version == version).to_numpy()
    assert set(batch.policy_version) == {version, RANDOM}
    sigma = np.sqrt(SHARE * (1 - SHARE) / USERS)
    assert abs(in_batch_canary.mean() - SHARE) < 5 * sigma
    checkpoint = str(stored(home, "cartpole", "agent_checkpoint", sabotaged))
    saved = tf.saved_model.load(f"{checkpoint}/{GREEDY_POLICY}")
    observations = users.sort_values("user_id")[list(OBSERVATION_COLUMNS)].to_numpy(np.float32)
    greedy = tf_policy(saved)(
        np.zeros(USERS, np.int32), np.zeros(USERS, np.float32), np.ones(USERS, np.float32), observations
    )
    np.testing.assert_array_equal(batch.greedy_action.to_numpy()[in_batch_canary], greedy[in_batch_canary])
    epsilon = deployment_record(app, checkpoint, sabotaged).epsilon
    canary_rows = batch[in_batch_canary]
    is_greedy = canary_rows.action == canary_rows.greedy_action
    np.testing.assert_allclose(canary_rows.action_prob[is_greedy], 1 - epsilon / 2, rtol=1e-6)
    np.testing.assert_allclose(batch[~in_batch_canary].action_prob, 0.5, rtol=1e-6)
    assert checks[0].severity == dg.AssetCheckSeverity.WARN
