"""The Open Bandit Dataset example: real logged recommendations as a daily contextual bandit."""
