"""Naive fine-tuning: task B's loss alone, so nothing holds theta near theta_A."""

from forgetting.strategies.base import Strategy


class Naive(Strategy):
    name = "naive"
