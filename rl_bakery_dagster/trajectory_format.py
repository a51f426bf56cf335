"""The Parquet layout of `trajectories`: one row per n-step transition.

A transition is a window of T = n_step + 1 consecutive timesteps of one episode, stored as
fixed-length arrays so that a reader can rebuild a TF-Agents `Trajectory` of shape [B, T]:

| column | type | length |
|---|---|---|
| `step_type` | array<int> | T |
| `observation` | array<float> | T * observation size (time-major, flattened) |
| `action` | array<long> or array<float> | T * action size |
| `next_step_type`, `reward`, `discount` | array<int>/<float> | T - 1 (of timesteps 1..T-1) |

The last item's `next_step_type`, `reward` and `discount` would come from the timestep after the
window, which may not have happened yet; TF-Agents' `to_transition` never reads them, so they
are not stored and the reader pads them.
"""

STEP_TYPE = "step_type"
OBSERVATION = "observation"
ACTION = "action"
NEXT_STEP_TYPE = "next_step_type"
REWARD = "reward"
DISCOUNT = "discount"
PARTITION_COLUMN = "dt"
"""Column holding the day (YYYY-MM-DD) a row belongs to; the IO manager writes one folder per value."""

ARRAY_COLUMNS = (STEP_TYPE, OBSERVATION, ACTION, NEXT_STEP_TYPE, REWARD, DISCOUNT)
