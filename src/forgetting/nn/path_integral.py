"""The path integral of a stretch of training (Synaptic Intelligence's importance, Zenke et al. 2017), recorded by
an after-step observer. Task A's is recorded by ``train_a`` (``TaskAState.path_integral_path``) for any strategy that
declares it needs it (``Strategy.task_a_needs``); SI records each later task's through its ``after_step`` hook."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from forgetting.files import load_weight_sets, save_weight_sets
from forgetting.nn.model import weights_by_path

Weights = dict[str, np.ndarray]


class PathIntegral:
    """Synaptic Intelligence's running path integral over a stretch of training (Zenke et al. 2017):

        w_i = sum over optimiser steps of  -g_i * (theta_i after the step - theta_i before it)

    with g the gradient that the step applied; ``start`` holds theta where the stretch began. An after-step
    observer: the training loop calls ``after_step`` inside every compiled training step (``train_a`` records task
    A's this way; SI records each later task's through its own ``after_step`` hook).
    """

    def __init__(self, network: keras.Model) -> None:
        self.start = weights_by_path(network)
        self.totals = {
            v.path: tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False) for v in network.trainable_variables
        }

    def after_step(self, variables, gradients, before) -> None:
        for variable, gradient, old in zip(variables, gradients, before, strict=True):
            self.totals[variable.path].assign_add(-gradient * (variable.value - old))

    def keep(self, repetitions: Sequence[int]) -> None:
        """Only the repetitions ``repetitions`` (indices, in order), their totals so far kept."""
        index = list(repetitions)
        self.start = {k: v[index] for k, v in self.start.items()}
        self.totals = {k: tf.Variable(tf.gather(v, index), trainable=False) for k, v in self.totals.items()}

    def result(self) -> Weights:
        return {k: np.array(v.numpy()) for k, v in self.totals.items()}

    def save(self, path: str | Path) -> None:
        save_weight_sets(path, start=self.start, path_integral=self.result())

    @staticmethod
    def load(path: str | Path) -> tuple[Weights, Weights]:
        """(theta where the stretch began, path integral) from ``save``'s file."""
        start, integral = load_weight_sets(path, ("start", "path_integral"), "SI path integral", "train_a")
        return start, integral

    def restart(self, network: keras.Model) -> None:
        """Begin a new stretch at the network's current weights."""
        self.start = weights_by_path(network)
        for total in self.totals.values():
            total.assign(tf.zeros_like(total))
