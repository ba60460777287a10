"""sklearn-compatible estimators (NeuralClassifier, NeuralRegressor) built on the trainer.

They follow scikit-learn's contract: the constructor only stores its arguments, ``fit`` learns
attributes ending in ``_`` (``classes_``, ``n_features_in_``, ``model_``), so ``clone``,
``get_params``, ``Pipeline``, ``GridSearchCV`` and ``RandomizedSearchCV`` work as with any
sklearn model. Training is :class:`tunelab.train.Trainer`; the network is any registered
builder (``mlp`` by default, sized by ``hidden_sizes``).

Both pass ``sklearn.utils.estimator_checks.check_estimator`` (``tests/sklearn``) with no check
skipped. Checks that do not apply are not run by sklearn itself: the sample-weight checks
(``fit`` takes no ``sample_weight``), ``check_decision_proba_consistency`` (no
``decision_function``) and the multi-label ones (not declared).

>>> from sklearn.datasets import load_iris
>>> from sklearn.model_selection import GridSearchCV
>>> from tunelab.sklearn import NeuralClassifier
>>> X, y = load_iris(return_X_y=True)
>>> search = GridSearchCV(
...     NeuralClassifier(epochs=30, random_state=0),
...     {"lr": [0.003, 0.01], "hidden_sizes": [(16,), (32,)]},
...     cv=3,
... ).fit(X, y)
>>> bool(search.best_score_ > 0.9)
True
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch.func import functional_call

from .config import TrainConfig
from .data import DataBundle
from .models import ModelSpec
from .train import Trainer

__all__ = ["NeuralClassifier", "NeuralRegressor"]

_PREDICT_BATCH = 4096


class _NeuralEstimator(BaseEstimator):
    """What the classifier and the regressor share: parameters, fitting, forward passes."""

    _task = "classification"

    def __init__(
        self,
        *,
        builder: str = "mlp",
        hidden_sizes: Sequence[int] = (64,),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        builder_params: dict[str, Any] | None = None,
        input_shape: Sequence[int] | None = None,
        init: str = "default",
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        epochs: int = 100,
        batch_size: int = 32,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        patience: int = 10,
        standardize: bool = True,
        random_state: int | np.random.RandomState | None = None,
        device: str = "cpu",
        threads: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.builder = builder
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.builder_params = builder_params
        self.input_shape = input_shape
        self.init = init
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.standardize = standardize
        self.random_state = random_state
        self.device = device
        self.threads = threads
        self.verbose = verbose

    # ---- pieces ------------------------------------------------------------------------------

    def _model_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.builder == "mlp":
            sizes = self.hidden_sizes
            widths = (
                [int(sizes)] if isinstance(sizes, (int, np.integer)) else [int(h) for h in sizes]
            )
            # () means no hidden layer: a linear model.
            params = {"widths": widths} if widths else {"depth": 0}
            params.update(
                activation=self.activation,
                dropout=float(self.dropout),
                batch_norm=bool(self.batch_norm),
            )
        params.update(self.builder_params or {})
        return params

    def _sample_shape(self, n_features: int) -> tuple[int, ...]:
        if self.input_shape is None:
            return (n_features,)
        shape = tuple(int(d) for d in self.input_shape)
        if math.prod(shape) != n_features:
            raise ValueError(
                f"input_shape={shape} holds {math.prod(shape)} values per sample, but X has "
                f"{n_features} features"
            )
        return shape

    def _split(self, X: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
        """``(X_train, y_train, X_val, y_val)``; the validation part is empty unless early
        stopping is on (and there are at least 10 samples)."""
        if not (self.early_stopping and len(y) >= 10 and self.validation_fraction > 0):
            return X, y, X[:0], y[:0]
        stratify = None
        if self._task == "classification":
            n_val = math.ceil(len(y) * float(self.validation_fraction))
            counts = np.bincount(y)
            if counts.min() >= 2 and n_val >= len(counts):
                stratify = y
        X_tr, X_val, y_tr, y_val = train_test_split(
            X, y, test_size=float(self.validation_fraction), random_state=seed, stratify=stratify
        )
        return X_tr, y_tr, X_val, y_val

    def _train_config(self, has_val: bool, n_train: int) -> TrainConfig:
        return TrainConfig(
            epochs=int(self.epochs),
            batch_size=max(1, min(int(self.batch_size), n_train)),
            optimizer=self.optimizer,
            lr=float(self.lr),
            weight_decay=float(self.weight_decay),
            early_stopping={
                "enabled": bool(self.early_stopping and has_val),
                "monitor": "val_loss",
                "patience": int(self.patience),
            },
            monitor="val_loss" if has_val else "train_loss",
            # Without a validation split the last epoch's weights are kept (like sklearn's MLP).
            restore_best=has_val,
            device=self.device,
            # None: the Trainer's rule (train/_threads.py) -- one thread for a small network.
            threads=None if self.threads is None else int(self.threads),
            tensorboard=False,
            progress="plain" if self.verbose else "none",
        )

    def _fit_arrays(self, X: np.ndarray, y: np.ndarray, classes: list[str]) -> None:
        """Scale, split, build and train; ``y`` is encoded (class indices or float targets)."""
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        # Learned scaling (None when off), so a later set_params cannot desynchronise predict.
        self.x_mean_ = self.x_scale_ = None
        if self.standardize:
            self.x_mean_ = X.mean(axis=0)
            scale = X.std(axis=0)
            self.x_scale_ = np.where(scale > 0, scale, 1.0)
        shape = self._sample_shape(X.shape[1])
        X_tr, y_tr, X_val, y_val = self._split(self._scaled(X), y, seed)
        bundle = DataBundle.from_arrays(
            X_tr.reshape(len(X_tr), *shape),
            y_tr,
            X_val.reshape(len(X_val), *shape),
            y_val,
            task=self._task,
            classes=classes,
        )
        output_size = len(classes) if self._task == "classification" else y.shape[1]
        spec = ModelSpec(
            self.builder,
            self._model_params(),
            input_shape=shape,
            output_size=output_size,
            init=self.init,
            task=self._task,
            classes=classes,
        )
        # The model's initial weights depend only on random_state, not on torch's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = spec.build()
        trainer = Trainer(self._train_config(len(y_val) > 0, len(y_tr)), seed=seed)
        with torch.random.fork_rng(devices=[]):
            result = trainer.fit(model, bundle)
        if result.status in ("nan", "diverged", "oom"):
            raise ValueError(f"training failed ({result.status}): {result.reason}")
        self.model_ = model.eval()
        self.spec_ = spec
        self.history_ = result.history
        self.n_iter_ = result.epochs_run
        self.best_epoch_ = result.best_epoch
        self.fit_status_ = result.status

    def save(self, directory: str | Path) -> Path:
        """Write the fitted network as a tunelab model directory that ``tunelab serve``,
        ``tunelab export`` and :func:`tunelab.models.load_model` read: ``model.safetensors``,
        ``model.json`` and, for rows of features, ``preprocessing.json`` holding the input
        scaling (columns named by ``feature_names_in_`` when ``fit`` saw a DataFrame, else
        ``x0, x1, ...``). A standardised regressor's target scaling goes into the model, so
        served predictions are in the targets' units."""
        from .data import TablePreprocessing
        from .models import HeadedModel, save_model

        check_is_fitted(self, "model_")
        shape = self.spec_.input_shape
        if len(shape) != 1 and self.x_mean_ is not None:
            raise ValueError(
                f"save() writes the input scaling for flat feature rows only; this model takes "
                f"inputs of shape {shape} (input_shape); fit with standardize=False to save it"
            )
        preprocessing = None
        if len(shape) == 1:
            names = [str(n) for n in getattr(self, "feature_names_in_", [])]
            names = names or [f"x{i}" for i in range(self.n_features_in_)]
            offset = self.x_mean_ if self.x_mean_ is not None else np.zeros(len(names))
            scale = self.x_scale_ if self.x_scale_ is not None else np.ones(len(names))
            preprocessing = TablePreprocessing.standard_scaler(
                names, offset, scale, task=self._task, classes=list(self.spec_.classes)
            )
        model, spec = copy.deepcopy(self.model_).cpu(), self.spec_
        y_mean, y_scale = getattr(self, "y_mean_", None), getattr(self, "y_scale_", None)
        if y_mean is not None:
            if not isinstance(model, HeadedModel):
                raise ValueError(
                    f"save() of a standardised regressor needs a built-in builder; "
                    f"{self.builder!r} has no output scaling to carry the target scale"
                )
            target_scale = [np.asarray(y_mean).tolist(), np.asarray(y_scale).tolist()]
            model.set_output_scale(*target_scale)
            spec = dataclasses.replace(spec, target_scale=target_scale)
        return save_model(directory, model, spec, preprocessing=preprocessing)

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if self.x_mean_ is not None:
            X = (X - self.x_mean_) / self.x_scale_
        return np.asarray(X, dtype=np.float32)

    def _outputs(self, X: Any) -> torch.Tensor:
        """Network outputs for ``X`` (validated against what ``fit`` saw), in float64.

        The trained float32 weights are evaluated in float64 so a row's prediction does not
        depend on which other rows share its batch (float32 matrix kernels differ by batch
        size in the last bits; sklearn's subset-invariance check compares at 1e-7).
        """
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        model = self.model_.eval()
        device = next(model.parameters()).device
        Xs = torch.tensor(self._scaled(X), dtype=torch.float64, device=device)
        Xs = Xs.reshape(len(X), *self.spec_.input_shape)
        state = {
            k: v.double() if v.is_floating_point() else v
            for k, v in model.state_dict(keep_vars=True).items()
        }
        with torch.no_grad():
            parts = [
                functional_call(model, state, (Xs[i : i + _PREDICT_BATCH],))
                for i in range(0, len(Xs), _PREDICT_BATCH)
            ]
        if not parts:
            return torch.zeros(0, self.spec_.output_size, dtype=torch.float64)
        return torch.cat(parts).cpu()

    def _validated(self, X: Any, y: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], **kwargs)
        if len(X) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 samples, got n_samples={len(X)}"
            )
        return X, y


class NeuralClassifier(ClassifierMixin, _NeuralEstimator):
    """A neural-network classifier trained by tunelab's :class:`~tunelab.train.Trainer`.

    Parameters
    ----------
    builder : str, default="mlp"
        Registered model builder (``mlp``, ``cnn``, ``resnet``, ``lstm``, ``gru``,
        ``transformer``, ``custom`` or your own).
    hidden_sizes : sequence of int, default=(64,)
        Units of each hidden layer of the ``mlp`` builder; ``()`` gives a linear model.
    activation, dropout, batch_norm
        Passed to the ``mlp`` builder.
    builder_params : dict, default=None
        Extra builder parameters (for ``cnn``: ``{"channels": [16, 32]}``); override the above.
    input_shape : sequence of int, default=None
        Reshape each row of ``X`` to this sample shape, e.g. ``(1, 8, 8)`` for digits + cnn.
    init : {"default", "kaiming", "xavier", "orthogonal"}, default="default"
    optimizer : {"adam", "adamw", "sgd", "rmsprop", "adagrad"}, default="adam"
    lr : float, default=1e-3
    weight_decay : float, default=0.0
    epochs : int, default=100
    batch_size : int, default=32
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` (stratified) and stop once the validation loss has not
        improved for ``patience`` epochs; the best epoch's weights are kept. Needs at least 10
        samples (below that, all are used for training and every epoch runs).
    validation_fraction : float, default=0.1
    patience : int, default=10
    standardize : bool, default=True
        Standardise each feature with the training mean and standard deviation.
    random_state : int, RandomState or None, default=None
        Seeds weight init, shuffling and the validation split; an int makes ``fit``
        reproducible.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where to train and predict (``auto``: CUDA when available).
    threads : int or None, default=None
        CPU threads for ``fit``; None chooses them from the network's size and the free cores
        (one thread for a small network: docs/train.md, "Threads").
    verbose : bool, default=False
        Print one line per epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    model_ : torch.nn.Module
        The trained network (eval mode).
    spec_ : tunelab.models.ModelSpec
    history_ : list of dict
        Per-epoch metrics from the trainer.
    n_iter_ : int
        Epochs run.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from tunelab.sklearn import NeuralClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = NeuralClassifier(hidden_sizes=(16,), lr=0.01, epochs=40, random_state=0).fit(X, y)
    >>> bool(clf.score(X, y) > 0.9), clf.predict_proba(X[:2]).shape
    (True, (2, 3))
    """

    _task = "classification"

    def fit(self, X: Any, y: Any) -> NeuralClassifier:
        """Train on ``X`` (n_samples, n_features) and labels ``y``; returns ``self``."""
        X, y = self._validated(X, y)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"NeuralClassifier needs at least 2 classes, got 1 class ({self.classes_[0]!r})"
            )
        self._fit_arrays(X, encoded.astype(np.int64), [str(c) for c in self.classes_])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns ordered as ``classes_``."""
        proba = torch.softmax(self._outputs(X), dim=1).numpy()
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        index = self._outputs(X).argmax(dim=1).numpy()
        return self.classes_[index]


class NeuralRegressor(RegressorMixin, _NeuralEstimator):
    """A neural-network regressor trained by tunelab's :class:`~tunelab.train.Trainer`.

    Takes the same parameters as :class:`NeuralClassifier`; with ``standardize`` the targets
    are standardised too (and predictions mapped back). ``y`` may have several columns.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from tunelab.sklearn import NeuralRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = NeuralRegressor(hidden_sizes=(32,), lr=0.01, epochs=60, random_state=0).fit(X, y)
    >>> bool(reg.score(X, y) > 0.5), reg.predict(X[:3]).shape
    (True, (3,))
    """

    _task = "regression"

    def fit(self, X: Any, y: Any) -> NeuralRegressor:
        """Train on ``X`` (n_samples, n_features) and targets ``y`` (n_samples[, n_targets])."""
        X, y = self._validated(X, y, multi_output=True, y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        self._y_1d = y.ndim == 1
        y2 = y.reshape(len(y), -1)
        self.y_mean_ = self.y_scale_ = None
        if self.standardize:
            self.y_mean_ = y2.mean(axis=0)
            scale = y2.std(axis=0)
            self.y_scale_ = np.where(scale > 0, scale, 1.0)
            y2 = (y2 - self.y_mean_) / self.y_scale_
        self._fit_arrays(X, y2.astype(np.float32), [])
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets, shape (n_samples,) or (n_samples, n_targets) as in ``fit``."""
        out = self._outputs(X).numpy()
        if self.y_mean_ is not None:
            out = out * self.y_scale_ + self.y_mean_
        return out.ravel() if self._y_1d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
