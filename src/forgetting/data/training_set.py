"""The examples each repetition trains on and the order it visits them in (``TrainingSet``), drawn again before each
epoch (``Reshuffle``): what every training of stacked repetitions fits over, the classifier's
(``forgetting.training.loop``) and a strategy's own model's (``forgetting.nn.generator``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

from forgetting.data.mnist import Split, as_uint8
from forgetting.errors import ForgettingError


class TrainingSet:
    """The examples each repetition trains on, and the order it visits them in.

    Built from one split shared by every repetition, or from one split per repetition (all of one length). The
    images are kept as uint8 (and scaled in the compiled step). ``shuffle(epoch)`` draws each repetition's own
    permutation for the epoch from (its seed, ``salt``, epoch); ``batch(positions)`` gathers, for positions
    p of the epoch, example order[s, p] of repetition s's examples: (images (S, B, 28, 28, 1), {task}, labels).

    With ``iterations`` (and ``batch_size``), an epoch is that many full batches instead of one pass (``positions``
    per epoch): repetition s reads the stream of its passes k = 0, 1, ..., each a permutation drawn from (its seed,
    ``salt``, k) cut to whole batches (the last partial batch of a pass dropped, as a ``drop_last`` data loader
    does), and epoch e is positions e * iterations * batch_size onwards of that stream.
    """

    def __init__(
        self,
        splits: Split | Sequence[Split] | Iterable[Split],
        seeds: Sequence[int],
        salt: int,
        iterations: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        splits = [splits] if isinstance(splits, Split) else splits
        examples, labels, tasks = None, [], []
        for split in splits:  # one at a time: a generator's splits are converted (to uint8) as they come
            pixels = as_uint8(split.image)
            if examples is None:  # room for one split per repetition (pages untouched stay unallocated)
                examples = np.empty((len(seeds), *pixels.shape), np.uint8)
            if len(labels) < len(seeds) and pixels.shape == examples.shape[1:]:
                examples[len(labels)] = pixels
            labels.append(np.asarray(split.label, np.int32))
            tasks.append(np.asarray(split.task, np.int32))
            del pixels
        lengths = {len(label) for label in labels}
        if len(lengths) != 1 or len(labels) not in (1, len(seeds)):
            raise ValueError(f"{len(labels)} training sets of lengths {sorted(lengths)} for {len(seeds)} repetitions")
        self.seeds, self.salt, self.length = list(seeds), int(salt), lengths.pop()
        self.shared = len(labels) == 1
        examples = examples[: len(labels)].reshape(-1, *examples.shape[2:])
        # a variable of unfixed length, so that ``release`` can let the examples go
        self.images = tf.Variable(examples, shape=(None, *examples.shape[1:]), trainable=False)
        del examples
        self.labels = tf.constant(np.concatenate(labels))
        self.tasks = tf.constant(np.concatenate(tasks))
        offsets = np.zeros(len(seeds)) if self.shared else np.arange(len(seeds)) * self.length
        self.offsets = tf.constant(offsets[:, None], tf.int32)
        self.iterations, self.batch_size = iterations, batch_size
        if iterations is not None and (batch_size is None or self.length < batch_size):
            raise ForgettingError(
                f"{iterations} iterations of batch {batch_size} from {self.length} examples: a batch needs more "
                "examples; lower train.batch_size, or count epochs (set the iterations param to null)"
            )
        self.positions = self.length if iterations is None else iterations * batch_size  # per epoch
        self.order = tf.Variable(tf.zeros((len(seeds), self.positions), tf.int32), trainable=False)

    def __len__(self) -> int:
        return self.length

    def permutations(self, epoch: int) -> np.ndarray:
        """(repetitions, ``positions``): the examples each repetition visits in ``epoch``, in order."""
        if self.iterations is None:
            return np.stack([self._pass(s, epoch) for s in self.seeds])
        whole = self.length // self.batch_size * self.batch_size  # of each pass
        start = epoch * self.positions
        passes = range(start // whole, -(-(start + self.positions) // whole))
        stream = np.stack([np.concatenate([self._pass(s, k)[:whole] for k in passes]) for s in self.seeds])
        offset = start - passes[0] * whole
        return stream[:, offset : offset + self.positions]

    def _pass(self, seed: int, k: int) -> np.ndarray:
        return np.random.default_rng([seed, self.salt, k]).permutation(self.length)

    def shuffle(self, epoch: int) -> None:
        self.order.assign(self.permutations(epoch).astype(np.int32))

    def release(self) -> None:
        """Let the examples go once trained on, whatever still holds the model or its traced step (``fit``'s
        History holds the model until the next task's): replay's growing training sets would pile up over a
        sequence."""
        self.images.assign(tf.zeros((0, *self.images.shape[1:]), self.images.dtype))

    def batch(self, positions: tf.Tensor) -> tuple[tf.Tensor, dict, tf.Tensor]:
        index = tf.gather(self.order, tf.cast(positions, tf.int32), axis=1) + self.offsets
        images = tf.cast(tf.gather(self.images, index), tf.float32) / 255.0
        return {"image": images, "task": tf.gather(self.tasks, index)}, tf.gather(self.labels, index)


class Reshuffle(keras.callbacks.Callback):
    """Draws every repetition's order for each epoch (``TrainingSet.shuffle``) before the epoch starts."""

    def __init__(self, data: TrainingSet) -> None:
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch, logs=None):
        self.data.shuffle(epoch)
