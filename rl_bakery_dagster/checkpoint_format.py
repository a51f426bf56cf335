"""The folder of one `agent_checkpoint` partition.

`checkpoint/` holds a `tf.train.Checkpoint` of the agent, its optimiser and train step;
`policies/greedy/` and `policies/collect/` are `PolicySaver` SavedModels that load with
`tf.saved_model.load` without this package; `metrics.json` holds the day's training numbers.
"""

CHECKPOINT = "checkpoint"
CHECKPOINT_PREFIX = "agent"
GREEDY_POLICY = "policies/greedy"
COLLECT_POLICY = "policies/collect"
METRICS = "metrics.json"
