"""One day of the checkpoint chain: restore yesterday's agent, train on the window, evaluate, save."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from rl_bakery_dagster.application import Application
from rl_bakery_dagster.checkpoint_settings import (
    CheckpointMismatch,
    changed_settings,
    read_local_metrics,
    refuse_structural_change,
    settings_record,
)
from rl_bakery_dagster.partitions import days_between, shift_day, window_days
from rl_bakery_dagster.resources.agents import TFAgentsResource
from rl_bakery_dagster.resources.io_managers import ParquetPartitions
from rl_bakery_dagster.training.checkpoints import greedy_policy, restore_agent, save_agent
from rl_bakery_dagster.training.dataset import TransitionLayout
from rl_bakery_dagster.training.summaries import DaySummaries
from rl_bakery_dagster.training.trainer import (
    NonFiniteLossError,
    TrainingStats,
    count_rows,
    train_each_row_once,
    train_on_transitions,
)


class TrainingDivergedError(ArithmeticError):
    """A day's training went non-finite: that day gets no checkpoint, the previous one is untouched."""

    def __init__(self, app: str, day: str, window: list[str], cause: NonFiniteLossError):
        self.app, self.day = app, day
        super().__init__(
            f"{app}: training agent_checkpoint[{day}] produced {cause} on the transitions of "
            f"{', '.join(window)}; no checkpoint is written for {day}. Look for extreme "
            "observations or rewards in those days (lower TimestepSchema.max_abs_value to refuse "
            "them) or lower the learning rate, then re-run the day."
        )


def transition_layout(app: Application) -> TransitionLayout:
    return TransitionLayout(
        n_step=app.trajectory.n_step,
        observation_size=app.schema.observation_size,
        action_size=app.action_space.size,
        discrete_action=app.action_space.is_discrete,
        single_step=app.schema.single_step,
    )


def train_day(
    app: Application,
    settings: TFAgentsResource,
    day: str,
    previous_day: str | None,
    previous_folder: str | None,
    window: Mapping[str, str],
    output_folder: str,
    log: logging.Logger,
) -> dict[str, object]:
    """Trains `app`'s agent for `day` and saves it to `output_folder`; returns the day's metadata.

    Args:
      settings: the agent resource of the run (launchpad overrides included).
      previous_day: the day `previous_folder` was trained for (None: a fresh agent).
      previous_folder: that day's checkpoint folder.
      window: day → trajectories partition URI for the stored days of the training window.

    When the newest day of the window has no transitions (no logs that day), yesterday's agent
    is carried forward unchanged: retraining on the older days alone would only repeat
    yesterday's training.

    `lin_ucb` keeps sufficient statistics (A = λI + Σ x xᵀ, b = Σ r x per arm) rather than weights
    fitted by gradient steps: it folds each row of the days its previous checkpoint has not seen
    into them exactly once, instead of `train_steps_per_day` batches from an endless stream.
    """
    previous_metrics = read_local_metrics(previous_folder) if previous_folder else None
    if previous_metrics is not None and previous_day:
        refuse_structural_change(app, settings, previous_metrics, previous_day)  # before building anything
    agent = settings.build(
        app.schema.observation_spec(), app.action_space.tensor_spec(), app.trajectory.n_step
    )
    if previous_folder:
        try:
            restore_agent(agent, previous_folder)
        except (AssertionError, ValueError) as error:
            raise CheckpointMismatch(
                f"{app.name}: the agent of this run does not match agent_checkpoint[{previous_day}] "
                f"({type(error).__name__}: {str(error).splitlines()[0][:300]}). Run with the settings "
                f"that checkpoint was trained with, or start a new chain (a new application name, or "
                f"delete the agent_checkpoint partitions and re-materialise from {app.start_date})."
            ) from error
        log.info(f"{day}: restored the agent of the previous day")
    else:
        log.info(f"{day}: first day, starting from a fresh agent")
    filesystem, files = ParquetPartitions(window).files()
    newest = window_days(day, app.trajectory.lag_days, app.trajectory.window_days)[-1]
    newest_rows = 0
    if newest in window:
        newest_rows = count_rows(*ParquetPartitions({newest: window[newest]}).files())
    if newest_rows == 0:
        reason = f"no transitions on {newest}, the newest day of the training window"
        log.warning(f"{day}: training skipped ({reason}); the agent is carried forward unchanged")
        stats = TrainingStats.untrained(count_rows(filesystem, files), agent, reason)
    elif settings.algorithm == "lin_ucb":
        covered = shift_day(previous_day, -app.trajectory.lag_days) if previous_day else ""
        unseen = {d: uri for d, uri in window.items() if d > covered}
        stats = train_each_row_once(
            agent,
            *ParquetPartitions(unseen).files(),
            transition_layout(app),
            batch_size=settings.batch_size,
            transitions_in_window=count_rows(filesystem, files),
            log=log,
        )
    else:
        try:
            stats = train_on_transitions(
                agent,
                filesystem,
                files,
                transition_layout(app),
                train_steps=settings.train_steps_per_day,
                batch_size=settings.batch_size,
                shuffle_rows=settings.shuffle_buffer_rows,
                seed=settings.seed * 100_003 + days_between(app.start_date, day),
                log=log,
                summaries=DaySummaries(
                    output_folder,
                    settings.epsilon_at if app.action_space.is_discrete else None,
                    settings.train_steps_per_day,
                ),
            )
        except NonFiniteLossError as error:
            raise TrainingDivergedError(app.name, day, sorted(window), error) from error
    metadata: dict[str, object] = {
        **stats.as_metadata(),
        **(
            {"epsilon_greedy": settings.epsilon_at(stats.total_train_steps)}
            if app.action_space.is_discrete
            else {}
        ),
        "restored_from": previous_day or "fresh agent",
        "training_days": ", ".join(sorted(window)) or "none",
        "changed_settings": changed_settings(previous_metrics, settings),
    }
    if app.evaluator is not None:
        result = app.evaluator(greedy_policy(agent), settings.seed)
        metadata |= {
            "eval_return_mean": result.mean_return,
            "eval_return_std": result.std_return,
            "eval_episodes": result.episodes,
        }
        log.info(f"{day}: greedy policy returns {result.mean_return:.2f} ± {result.std_return:.2f}")
    unchanged_from = previous_folder if stats.skipped else None
    record = settings_record(app, settings)
    save_agent(agent, output_folder, {"day": day, **metadata, **record}, unchanged_from=unchanged_from)
    return {**metadata, **record}
