"""DQN on CartPole-v1 (500-step episodes) within the RL Zoo's online budget of 50,000 timesteps."""
