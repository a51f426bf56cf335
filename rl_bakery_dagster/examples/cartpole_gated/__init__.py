"""DQN CartPole-v0 behind the RL deployment gate: each day's candidate is judged before it is played."""
