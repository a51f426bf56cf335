"""`python -m rl_bakery_dagster.examples.cartpole_gated`: the preset's days, judged and trained."""

from rl_bakery_dagster.examples.gym_days import main

if __name__ == "__main__":
    main("cartpole_gated")
