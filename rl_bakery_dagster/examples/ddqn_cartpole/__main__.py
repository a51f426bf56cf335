"""`python -m rl_bakery_dagster.examples.ddqn_cartpole`: the preset's days, trained through Dagster."""

from rl_bakery_dagster.examples.gym_days import main

if __name__ == "__main__":
    main("ddqn_cartpole")
