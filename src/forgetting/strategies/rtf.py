"""Replay through feedback, RtF (van de Ven & Tolias 2018, "Generative replay with feedback connections as a general
strategy for continual learning"; GMvandeVen/continual-learning's ``--feedback``): generative replay
(``generative_replay``) whose generator is the classifier itself, with feedback connections. The classifier's hidden
layers are the encoder of a variational autoencoder; on the last of them sit, beside the logits, the code's heads

    mu = W_mu h + b_mu,  log s^2 = W_v h + b_v   (``rtf.latent`` each),

and a decoder mirrors the hidden layers back to the pixels (z -> relu(...) -> ... -> x' = sigmoid(...): widths the
classifier's in reverse; one hidden layer of 128 for this project's 1 x 128 MLP). Nothing is stored but weights.

Training on task t (k = t - 1 finished tasks, 1-based t), each step adds to the classifier's cross-entropy on its
batch x (per repetition; the loop's ``penalty`` and ``memory_loss`` hooks; the heads and decoder are trained with the
network, by the same optimiser step: ``Strategy.trained_layers``)

    V(x)  +  rtf.weight * k * ( T^2 * sum_g mean over x~ of KL( softmax(z_old,g(x~) / T) || softmax(z_g(x~) / T) )
                                + V(x~) ),

with V the VAE's loss as van de Ven & Tolias weigh it beside the cross-entropy, per pixel: the mean over the batch
of (sum over pixels of BCE(x, x') + KL(N(mu, s^2) || N(0, I))) / 784; x~ a batch (``train.batch_size``) decoded
from z ~ N(0, I) by the decoder as it was at the end of task t - 1, labelled by the classifier as it was then (z_old;
the groups g, the temperature T and the class scenario's zero-padded targets as in ``generative_replay``). With
rtf.weight = 1 this is their rnt * loss(x) + (1 - rnt) * loss(x~), rnt = 1 / t, times t.

Task A: this project trains task A's checkpoint once, for every strategy, with no decoder. With ``rtf.task_a:
frozen`` (the default), ``from_params`` first fits the heads and decoder to task A on the checkpoint's frozen hidden
layers (``rtf.epochs`` passes, or ``rtf.iterations`` steps, Adam at ``rtf.learning_rate``), and the two share the
encoder from task B on. With ``rtf.task_a: joint``, the loop trains the checkpoint's classifier and the feedback
together on task A first (``Strategy.retrain_task_a``: the same length and learning rate, the loss CE + V, nothing
replayed), as van de Ven & Tolias train them from the start (theirs from a fresh classifier; ours goes on from the
checkpoint). The decoder is not saved: the checkpoint is the classifier's.

A tuning trial trains a grid of weights at once (``set_strengths``, as ``generative_replay``'s), each copy of a seed
with feedback of its own (it trains with the classifier), to the end: the tuner's halving would have to cut the
feedback's optimiser state as well as the network's, which the loop does not (``keep`` is not overridden).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Annotated, Any, ClassVar, Literal

import keras
import numpy as np
import tensorflow as tf
from pydantic import Field

from forgetting.config.params import ITERATIONS, POSITIVE, STRENGTH, Section, integer
from forgetting.data.mnist import Split
from forgetting.data.scenarios import Scenario
from forgetting.nn.model import StackedDense, StackedMLP, frozen_copy
from forgetting.strategies.base import Memory, Strategy, TaskAState
from forgetting.strategies.generative_replay import (
    PIXELS,
    REPLAY_SALT,
    GenerativeReplay,
    VariationalAutoencoder,
    flattened,
    frozen_generator,
    generator_schedule,
    initialised,
    normal_draws,
    train_generator,
)

FIRST_LAYER = 200  # glorot_uniform's layer numbers for the feedback's kernels: 200, 201, ...
CURRENT_SALT = 700  # the reparameterisation's noise on the task's own batches (700 + the task trained)
REPLAYED_SALT = 800  # ... and on the replayed ones (800 + the finished tasks)


@keras.saving.register_keras_serializable(package="forgetting")
class Feedback(VariationalAutoencoder):
    """The feedback of S classifiers side by side: each one's code heads on its last hidden layer and its decoder
    (the module docstring); the encoder is the classifier's hidden layers, which this does not hold."""

    def __init__(self, widths: Sequence[int], latent: int, seeds: Sequence[int] = (0,), **kwargs) -> None:
        super().__init__(**kwargs)
        self.widths, self.latent, self.seeds = [int(w) for w in widths], int(latent), [int(s) for s in seeds]
        count = len(self.seeds)
        self.mean = StackedDense(count, self.latent, name="mean")
        self.log_variance = StackedDense(count, self.latent, name="log_variance")
        for number, units in enumerate(reversed(self.widths)):  # one attribute a layer, as StackedMLP's
            setattr(self, f"decoder_{number}", StackedDense(count, units, "relu", name=f"decoder_{number}"))
        self.pixels = StackedDense(count, PIXELS, name="pixels")

    @property
    def layers_in_order(self) -> list[StackedDense]:
        decoder = [getattr(self, f"decoder_{number}") for number in range(len(self.widths))]
        return [self.mean, self.log_variance, *decoder, self.pixels]

    @property
    def inputs(self) -> list[int]:
        """Each layer's input width, in ``layers_in_order``."""
        return [self.widths[-1], self.widths[-1], self.latent, *reversed(self.widths)]

    def build(self, input_shape=None) -> None:
        for layer, width in zip(self.layers_in_order, self.inputs, strict=True):
            layer.build((None, width))
        self.built = True

    def decode(self, z: tf.Tensor) -> tf.Tensor:
        h = z
        for layer in self.layers_in_order[2:]:
            h = layer(h)
        return h

    def loss_per_repetition(self, features: tf.Tensor, flat: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
        """Each repetition's V (S,): its negative ELBO per pixel, averaged over its batch, for the classifier's last
        hidden layer ``features`` (S, batch, H) on pixels ``flat`` (S, batch, 784), with noise ``eps`` (S, batch,
        Z)."""
        return self.negative_elbo(flat, self.mean(features), self.log_variance(features), eps) / float(PIXELS)

    def get_config(self) -> dict:
        return {**super().get_config(), "widths": self.widths, "latent": self.latent, "seeds": self.seeds}


def build_feedback(widths: Sequence[int], latent: int, seeds: Sequence[int]) -> Feedback:
    """Heads and decoder per seed: repetition s's kernels Glorot-uniform draws from ``seeds[s]``, its biases zero."""
    feedback = Feedback(widths, latent, seeds, name="feedback")
    feedback.build()
    return initialised(feedback, FIRST_LAYER)


def feedback_parameters(widths: Sequence[int], latent: int) -> int:
    """The feedback's weights: the two heads and the decoder (kernels and biases)."""
    sizes = [latent, *reversed(widths), PIXELS]
    return 2 * (widths[-1] + 1) * latent + sum((a + 1) * b for a, b in pairwise(sizes))


class OnFrozenFeatures(VariationalAutoencoder):
    """The feedback with a frozen classifier as its encoder: what ``train_generator`` fits to task A."""

    def __init__(self, network: StackedMLP, feedback: Feedback) -> None:
        super().__init__(name="feedback_on_task_a")
        self.network, self.feedback = network, feedback
        self.network.trainable = False
        self.seeds, self.latent = feedback.seeds, feedback.latent

    def decode(self, z: tf.Tensor) -> tf.Tensor:
        return self.feedback.decode(z)

    def loss_per_repetition(self, images: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
        return self.feedback.loss_per_repetition(self.network.features(images), flattened(images), eps)


def per_repetition_pixels(images: tf.Tensor, repetitions: int) -> tf.Tensor:
    """Pixels (S, batch, 784) of a batch shared by every repetition (batch, 28, 28, 1) or of one each."""
    if len(images.shape) == 4:
        images = tf.broadcast_to(images[None], tf.concat([[repetitions], tf.shape(images)], axis=0))
    return flattened(images)


class RtFParams(Section):
    weight: STRENGTH
    temperature: POSITIVE
    latent: integer("an integer >= 1 (the code size)", ge=1)
    epochs: integer("an integer >= 1 (the feedback's epochs on task A)", ge=1)
    iterations: ITERATIONS
    learning_rate: POSITIVE
    task_a: Annotated[
        Literal["frozen", "joint"],
        Field(description="frozen (its feedback fit to task A on the checkpoint's frozen hidden layers) or joint"),
    ]


class RtF(GenerativeReplay):
    """Generative replay by the classifier itself: its hidden layers encode, a decoder of its own generates."""

    name = "rtf"
    strength_param = "rtf.weight"
    keep = Strategy.keep  # no halving: its feedback trains with the network (the module docstring)
    params_section: ClassVar[dict[str, Any]] = {"rtf": RtFParams}
    hyperparameters = tuple(f"rtf.{key}" for key in RtFParams.model_fields)  # every key of its section
    search_space: ClassVar[dict[str, list[Any]]] = {"rtf.weight": [0.3, 1.0, 3.0]}

    @classmethod
    def memory(cls, params: dict[str, Any], num_parameters: int, num_tasks: int) -> Memory:
        units = params["model"]["hidden_units"]
        widths = [units] if isinstance(units, int) else list(units)
        feedback = feedback_parameters(widths, params["rtf"]["latent"])
        what = "its heads and decoder, their copy and the previous network"
        return Memory(what, floats=2 * feedback + num_parameters)

    def __init__(self, network: StackedMLP, feedback: Feedback, scenario: Scenario, own: dict, batch_size: int) -> None:
        super().__init__(network, feedback, scenario, own, batch_size)
        self.generator.trainable = True  # it trains with the network
        self.previous = frozen_generator(feedback)  # the decoder as it was at the end of the last task: the replay
        # the steps trained so far: the noise on the task's own batches is drawn from it (``penalty`` has no step)
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="rtf_steps")
        if self.own["task_a"] == "joint":  # task A first (``retrain_task_a``), with nothing finished to replay
            self.tasks_done = 0

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> RtF:
        own, network = params["rtf"], task_a.model()
        feedback = build_feedback(network.widths, own["latent"], network.seeds)
        batch_size = params["train"]["batch_size"]
        if own["task_a"] == "frozen":
            on_task_a = OnFrozenFeatures(network, feedback)
            train_generator(on_task_a, task_a.train_split(), None, 1, **generator_schedule(own), batch_size=batch_size)
        return cls(network, feedback, task_a.scenario, own, batch_size)

    def retrain_task_a(self) -> dict[str, Any] | None:
        """With ``rtf.task_a: joint``, the classifier and the feedback train on task A together first."""
        return generator_schedule(self.own) if self.own["task_a"] == "joint" else None

    def trained_layers(self) -> list[keras.layers.Layer]:
        return [self.generator]

    def replayed(self, step: tf.Tensor) -> tf.Tensor:
        """A batch per repetition decoded by the feedback as it was at the end of the last task (S, batch, 28, 28,
        1), drawn from (its seed, the finished tasks, ``step``)."""
        return tf.stop_gradient(self.previous.sample(REPLAY_SALT + self.tasks_done, step, self.batch_size))

    def vae_loss(self, network: StackedMLP, images: tf.Tensor, salt: int, step: tf.Tensor) -> tf.Tensor:
        """``vae_loss_per_repetition`` summed over the repetitions."""
        return tf.reduce_sum(self.vae_loss_per_repetition(network, images, salt, step))

    def vae_loss_per_repetition(self, network: StackedMLP, images: tf.Tensor, salt: int, step: tf.Tensor) -> tf.Tensor:
        """Each repetition's V (S,) on ``images`` (the batch's, shared or one per repetition), with noise drawn
        from (its seed, ``salt``, ``step``)."""
        features = network.features(images, training=True)
        eps = normal_draws(self.generator.seeds, salt, step, (tf.shape(features)[1], self.generator.latent))
        flat = per_repetition_pixels(images, network.repetitions)
        return self.generator.loss_per_repetition(features, flat, eps)

    def penalty(self, model: keras.Model, x: dict | None = None, logits: tf.Tensor | None = None) -> tf.Tensor:
        """V on the task's own batch."""
        return self.vae_loss(model, x["image"], CURRENT_SALT + self.tasks_done, self.steps.assign_add(1))

    def memory_loss(self, network: keras.Model, step: tf.Tensor) -> tf.Tensor:
        if self.tasks_done == 0:  # task A trained again (``rtf.task_a: joint``): nothing to replay yet
            return tf.constant(0.0)
        images, t = self.replayed(step), self.temperature
        salt = REPLAYED_SALT + self.tasks_done
        if np.ndim(self.weight) == 1:  # each repetition's terms scaled by its own weight: the same float32 factor
            each = t**2 * self.distillation_per_repetition(network, images)
            each += self.vae_loss_per_repetition(network, images, salt, step)
            return tf.reduce_sum(tf.constant(self.weight * self.tasks_done, tf.float32) * each)
        return self.weight * self.tasks_done * (t**2 * self.distillation(network, images)
                                                + self.vae_loss(network, images, salt, step))  # fmt: skip

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        """The feedback as it is now replays the tasks so far; the classifier as it is now labels what it replays."""
        self.previous = frozen_generator(self.generator)
        self.teacher = frozen_copy(network)
        self.tasks_done = task + 1
        self.groups = self._groups()
