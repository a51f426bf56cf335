"""DQN on Acrobot-v1 within the RL Zoo's online budget of 100,000 timesteps, learnt from daily logs."""
