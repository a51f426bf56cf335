"""`python -m rl_bakery_dagster.examples.cartpole_v1`: the preset's days, trained through Dagster."""

from rl_bakery_dagster.examples.gym_days import main

if __name__ == "__main__":
    main("cartpole_v1")
