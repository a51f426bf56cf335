"""Fitted Q Evaluation (Le, Voloshin & Yue 2019) of a candidate and of the logging policy.

FQE regresses a Q-function of the *evaluated* policy on logged transitions ``(s, a, r, s')``:
``Q(s, a) <- r + gamma * d * E_{a' ~ pi(s')} Qbar(s', a')`` with ``Qbar`` a periodically copied
target network (the minibatch form of the paper's iterations; ``d`` is 0 after a terminal step).
Its value is then ``V(s_0) = E_{a ~ pi(s_0)} Q(s_0, a)`` averaged over the day's episode starts.
Unlike importance sampling it needs no propensities and does not degrade with the horizon; its
error is the regression's (function class, coverage of the candidate's actions in the logs).

Two heads are fitted on the same minibatches:

* the **candidate** as deployed: epsilon-greedy around the greedy action of its own Q-network,
  ``E_{a'} Qbar(s', a') = (1 - eps) Qbar(s', g(s')) + eps * mean_a Qbar(s', a)``;
* the **logging policy**, by fitted SARSA: ``a'`` is the action the log took next, so no model of
  the logging policy (nor its propensities) is needed. Judging both with the same function class and
  data lets their regression errors partly cancel in the paired difference the gate uses.

Each copy of the target network is one Bellman backup of the paper's iterations, so a value can only
carry reward from ``train_steps / target_update_period`` steps ahead: the number of copies must reach
the effective horizon. Copying much more often than every 100 steps let the candidate's head diverge
on CartPole (values of 10^4 against a true 64 with a copy every 10 steps); 8,000 steps with a copy
every 100 (80 backups) came within 15 % of the true discounted values of both policies.

The transitions are the evaluated day's stored ``trajectories`` (which the candidate never trained
on, `lag_days >= 1`), streamed from Parquet by the same `transition_dataset` that trains agents.
The fitted networks are plain ReLU MLPs (TF-Agents `QNetwork`); their weights travel to Spark
executors as numpy arrays (:class:`FittedQ`), so scoring the episode starts needs no files and no
TensorFlow there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FittedQ:
    """A fitted Q-network as numpy arrays: (kernel, bias) per Dense layer, ReLU between them."""

    weights: tuple[np.ndarray, ...]

    def values(self, observations: np.ndarray) -> np.ndarray:
        """Q(s, .) for a [B, obs] batch: [B, num_actions]."""
        hidden = np.asarray(observations, dtype=np.float64)
        layers = list(zip(self.weights[0::2], self.weights[1::2], strict=True))
        for index, (kernel, bias) in enumerate(layers):
            hidden = hidden @ kernel.astype(np.float64) + bias.astype(np.float64)
            if index < len(layers) - 1:
                hidden = np.maximum(hidden, 0.0)
        return hidden


@dataclass(frozen=True)
class FQESettings:
    train_steps: int = 8000
    batch_size: int = 256
    learning_rate: float = 1e-3
    target_update_period: int = 100
    fc_layer_params: tuple[int, ...] = (64, 64)
    seed: int = 0


@dataclass(frozen=True)
class FQEResult:
    candidate: FittedQ
    logging: FittedQ
    final_loss: float
    """Mean Huber loss of both heads over the last 10% of steps."""
    train_steps: int


def epsilon_greedy_value(q: np.ndarray, greedy: np.ndarray, epsilon: float) -> np.ndarray:
    """E_{a ~ eps-greedy(greedy)} q[a] per row: [B]."""
    rows = np.arange(len(q))
    return (1.0 - epsilon) * q[rows, greedy] + epsilon * q.mean(axis=1)


def fit_q_evaluation(
    batches: Iterable[object],
    candidate_q: Callable[[object], object],
    epsilon: float,
    gamma: float,
    observation_size: int,
    num_actions: int,
    settings: FQESettings,
    log: Callable[[str], None] | None = None,
) -> FQEResult:
    """Fits both heads on `batches` (TF-Agents `Trajectory` batches of shape [B, T >= 2]).

    ``candidate_q`` maps a [B, obs] float32 tensor to the candidate's Q-values [B, num_actions]
    (only its argmax is used: the candidate's greedy action).
    """
    import tensorflow as tf
    from tf_agents.networks import q_network
    from tf_agents.specs import tensor_spec
    from tf_agents.utils import common

    tf.random.set_seed(settings.seed)
    observation_spec = tensor_spec.TensorSpec((observation_size,), tf.float32)
    action_spec = tensor_spec.BoundedTensorSpec((), tf.int64, minimum=0, maximum=num_actions - 1)

    def network(name: str) -> q_network.QNetwork:
        built = q_network.QNetwork(
            observation_spec, action_spec, fc_layer_params=tuple(settings.fc_layer_params), name=name
        )
        built.create_variables()
        return built

    heads = {"candidate": network("fqe_candidate"), "logging": network("fqe_logging")}
    targets = {name: network(f"{name}_target") for name in heads}
    for name in heads:
        common.soft_variables_update(heads[name].variables, targets[name].variables, tau=1.0)
    optimizer = tf.keras.optimizers.Adam(learning_rate=settings.learning_rate)
    huber = tf.keras.losses.Huber(reduction="none")
    variables = heads["candidate"].trainable_variables + heads["logging"].trainable_variables

    @tf.function
    def train_step(
        observation: tf.Tensor, action: tf.Tensor, reward: tf.Tensor, discount: tf.Tensor
    ) -> tf.Tensor:
        state, next_state = observation[:, 0], observation[:, 1]
        taken, next_taken = action[:, 0], action[:, 1]
        continues = gamma * discount[:, 0]
        greedy = tf.argmax(candidate_q(next_state), axis=1, output_type=tf.int64)
        next_candidate, _ = targets["candidate"](next_state)
        expected = (1.0 - epsilon) * tf.gather(
            next_candidate, greedy, batch_dims=1
        ) + epsilon * tf.reduce_mean(next_candidate, axis=1)
        next_logging, _ = targets["logging"](next_state)
        labels = {
            "candidate": reward[:, 0] + continues * expected,
            "logging": reward[:, 0] + continues * tf.gather(next_logging, next_taken, batch_dims=1),
        }
        with tf.GradientTape() as tape:
            losses = []
            for name, head in heads.items():
                q, _ = head(state)
                predicted = tf.gather(q, taken, batch_dims=1)
                losses.append(
                    tf.reduce_mean(huber(tf.stop_gradient(labels[name])[:, None], predicted[:, None]))
                )
            loss = tf.add_n(losses)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss / 2.0

    iterator = iter(batches)
    losses: list[float] = []
    tail = max(1, settings.train_steps // 10)
    for step in range(settings.train_steps):
        batch = next(iterator)
        loss = train_step(
            batch.observation,  # type: ignore[attr-defined]
            tf.cast(batch.action, tf.int64),  # type: ignore[attr-defined]
            batch.reward,  # type: ignore[attr-defined]
            batch.discount,  # type: ignore[attr-defined]
        )
        if step >= settings.train_steps - tail:
            losses.append(float(loss))
        if (step + 1) % settings.target_update_period == 0:
            for name in heads:
                common.soft_variables_update(heads[name].variables, targets[name].variables, tau=1.0)
        if log and (step + 1) % max(1, settings.train_steps // 4) == 0:
            log(f"fitted Q evaluation: step {step + 1}/{settings.train_steps}, loss {float(loss):.4g}")

    def frozen(head: q_network.QNetwork) -> FittedQ:
        return FittedQ(tuple(v.numpy() for v in head.trainable_variables))

    return FQEResult(
        candidate=frozen(heads["candidate"]),
        logging=frozen(heads["logging"]),
        final_loss=float(np.mean(losses)) if losses else float("nan"),
        train_steps=settings.train_steps,
    )


def start_values(
    candidate: FittedQ,
    logging: FittedQ,
    observations: np.ndarray,
    greedy: np.ndarray,
    logged_action: np.ndarray,
    epsilon: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per episode start: the candidate's FQE value ``E_{a~pi_e} Q_e(s0, a)`` and the logging policy's
    ``Q_b(s0, a0)`` at the action the log took (an unbiased draw of ``V_b(s0)``)."""
    rows = np.arange(len(observations))
    value = epsilon_greedy_value(candidate.values(observations), greedy, epsilon)
    return value, logging.values(observations)[rows, logged_action]
