"""DDQN on CartPole-v0 within RL Bakery's published budget of 6,600 logged timesteps."""
