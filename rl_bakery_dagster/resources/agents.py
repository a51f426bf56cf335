"""The agent resource: which TF-Agents agent to train, with which hyper-parameters.

Its fields are Dagster config, so every hyper-parameter shows (and can be changed) in the
launchpad. TensorFlow is imported only when an agent is built, so loading the definitions
stays fast.
"""

from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import Field, create_model
from pydantic.fields import FieldInfo

if TYPE_CHECKING:
    from tf_agents.agents.tf_agent import TFAgent
    from tf_agents.specs import BoundedTensorSpec, TensorSpec

Algorithm = Literal["dqn", "ddqn", "ddpg", "neural_epsilon_greedy", "lin_ucb"]
BANDIT_ALGORITHMS = ("neural_epsilon_greedy", "lin_ucb")
TDLoss = Literal["squared", "huber"]


class TFAgentsResource(dg.ConfigurableResource):
    """A TF-Agents agent (DQN, DDQN or DDPG) and how it trains each day."""

    algorithm: Algorithm = Field(
        default="dqn",
        description="RL: dqn, ddqn (discrete), ddpg (continuous); contextual bandits: "
        "neural_epsilon_greedy, lin_ucb",
    )
    fc_layer_params: list[int] = Field(
        default=[100], description="hidden layers of the Q-network (DQN) or reward network (bandit)"
    )
    ucb_alpha: float = Field(default=1.0, description="lin_ucb: weight of the confidence bonus")
    actor_fc_layer_params: list[int] = Field(default=[400, 300], description="DDPG actor layers")
    critic_observation_fc_layer_params: list[int] = Field(
        default=[400], description="DDPG critic layers on the observation"
    )
    critic_joint_fc_layer_params: list[int] = Field(
        default=[300], description="DDPG critic layers on observation and action"
    )
    learning_rate: float = Field(default=1e-3, description="Q-network learning rate")
    actor_learning_rate: float = Field(default=1e-4, description="DDPG actor learning rate")
    critic_learning_rate: float = Field(default=1e-3, description="DDPG critic learning rate")
    learning_rate_decay_steps: int = Field(
        default=0,
        ge=0,
        description="0 keeps every learning rate constant; otherwise each falls linearly over this "
        "many train steps, counted across days, to learning_rate_final_fraction of its value",
    )
    learning_rate_final_fraction: float = Field(
        default=0.1, gt=0.0, le=1.0, description="where a decaying learning rate ends, as a fraction"
    )
    gamma: float = Field(default=0.99, description="discount factor")
    epsilon_greedy: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="exploration of the collect policy and of deployed action batches",
    )
    epsilon_decay_steps: int = Field(
        default=0,
        ge=0,
        description="0 keeps epsilon_greedy constant; otherwise exploration falls linearly over this "
        "many train steps, counted across days, from epsilon_greedy to epsilon_greedy_final",
    )
    epsilon_greedy_final: float = Field(
        default=0.05, ge=0.0, le=1.0, description="exploration once the decay is over"
    )
    ou_stddev: float = Field(default=0.2, description="DDPG exploration noise scale")
    ou_damping: float = Field(default=0.15, description="DDPG exploration noise damping")
    target_update_tau: float = Field(default=1.0, description="soft update weight of targets")
    target_update_period: int = Field(default=100, description="train steps between target updates")
    gradient_clipping: float | None = Field(default=None, description="clip gradients to this norm")
    td_errors_loss: TDLoss = Field(
        default="squared", description="DQN/DDQN loss on TD errors: squared (element-wise) or huber"
    )
    batch_size: int = Field(default=64, description="transitions per train step")
    train_steps_per_day: int = Field(
        default=1000,
        description="train steps on each day's window (lin_ucb ignores it: it folds every new row "
        "into its statistics exactly once)",
    )
    shuffle_buffer_rows: int = Field(
        default=100_000, description="transitions held in memory to shuffle the Parquet stream"
    )
    seed: int = Field(default=0, description="seeds network initialisation and data order")

    @property
    def is_bandit(self) -> bool:
        return self.algorithm in BANDIT_ALGORITHMS

    def resolved(self) -> dict[str, Any]:
        """Every setting as the agent is built from it (recorded with each checkpoint)."""
        return self.model_dump(mode="json")

    def structure(self) -> dict[str, Any]:
        """The settings that shape the agent's variables: they cannot change under a checkpoint chain."""
        return {name: getattr(self, name) for name in STRUCTURAL_FIELDS[self.algorithm]}

    def epsilon_at(self, train_step: int) -> float:
        """Exploration of a checkpoint trained `train_step` steps: its collect policy and action batches."""
        if self.epsilon_decay_steps == 0:
            return self.epsilon_greedy
        progress = min(train_step, self.epsilon_decay_steps) / self.epsilon_decay_steps
        return self.epsilon_greedy + (self.epsilon_greedy_final - self.epsilon_greedy) * progress

    def build(
        self, observation_spec: "TensorSpec", action_spec: "BoundedTensorSpec", n_step: int
    ) -> "TFAgent":
        """A fresh, initialised agent for these specs (deterministic for a given seed)."""
        from rl_bakery_dagster.training.agents import build_agent

        return build_agent(self, observation_spec, action_spec, n_step)


STRUCTURAL_FIELDS: dict[str, tuple[str, ...]] = {
    "dqn": ("algorithm", "fc_layer_params"),
    "ddqn": ("algorithm", "fc_layer_params"),
    "ddpg": (
        "algorithm",
        "actor_fc_layer_params",
        "critic_observation_fc_layer_params",
        "critic_joint_fc_layer_params",
    ),
    "neural_epsilon_greedy": ("algorithm", "fc_layer_params"),
    "lin_ucb": ("algorithm",),
}
"""Per algorithm, the fields whose change would build variables yesterday's checkpoint cannot fill."""


def with_application_defaults(agent: TFAgentsResource) -> TFAgentsResource:
    """`agent` as an instance of a subclass whose every field defaults to `agent`'s value.

    Dagster 1.13 keeps a resource instance's values only as the default of the whole config
    block: a run config that sets one field fills every other field from the *class* defaults
    (and converts `Literal` fields without their per-field default). With the application's
    values as the class defaults, a partial run config changes only the fields it names, and the
    launchpad shows the application's values.
    """
    fields: dict[str, Any] = {
        name: (info.annotation, FieldInfo.merge_field_infos(info, default=getattr(agent, name)))
        for name, info in type(agent).model_fields.items()
    }
    bound = create_model(  # type: ignore[call-overload]
        type(agent).__name__, __base__=type(agent), __module__=type(agent).__module__, **fields
    )
    bound.__doc__ = type(agent).__doc__
    return bound(**agent.model_dump())
