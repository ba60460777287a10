"""The ``data`` section: where the data comes from and how it is cleaned, scaled and split."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ._base import Section

SOURCES = ("sklearn", "synthetic", "csv", "parquet", "numpy", "image_folder", "cifar")
SKLEARN_SETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")


class SyntheticConfig(Section):
    """Parameters of sklearn's make_classification / make_regression."""

    task: Literal["classification", "regression"] = "classification"
    n_samples: int = Field(1000, gt=0)
    n_features: int = Field(20, gt=0)
    n_informative: int = Field(10, gt=0)
    n_redundant: int = Field(2, ge=0)
    n_classes: int = Field(2, ge=2)
    class_sep: float = Field(1.0, gt=0)
    flip_y: float = Field(0.01, ge=0, le=1)
    noise: float = Field(0.0, ge=0)
    weights: list[float] | None = None


class CleanConfig(Section):
    """Cleaning steps, each reported in the data profile."""

    missing: Literal["drop", "mean", "median", "most_frequent", "constant", "error"] = "median"
    fill_value: float = 0.0
    outliers: Literal["none", "zscore", "iqr"] = "none"
    outlier_action: Literal["clip", "drop"] = "clip"
    zscore_threshold: float = Field(3.0, gt=0)
    iqr_factor: float = Field(1.5, gt=0)
    duplicates: Literal["keep", "drop"] = "keep"
    categorical: Literal["onehot", "error"] = "onehot"
    max_categories: int = Field(50, ge=2)
    constant: Literal["keep", "drop"] = "keep"
    dtypes: dict[str, Literal["float", "int", "category", "str", "bool"]] = Field(
        default_factory=dict
    )


class SplitConfig(Section):
    """Train/val/test fractions; stratified for classification."""

    val: float = Field(0.15, ge=0, lt=1)
    test: float = Field(0.15, ge=0, lt=1)
    stratify: bool = True
    shuffle: bool = True

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> SplitConfig:
        if self.val + self.test >= 0.95:
            raise ValueError(
                "val + test must leave training data (sum below 0.95), "
                f"got {self.val + self.test:g}"
            )
        return self


class AugmentConfig(Section):
    """Image augmentation applied per training batch; off at evaluation time."""

    enabled: bool = False
    crop_padding: int = Field(0, ge=0)
    flip: bool = False
    rotate_degrees: float = Field(0.0, ge=0, le=180)


class DataConfig(Section):
    """Where the data is and how to prepare it."""

    source: Literal["sklearn", "synthetic", "csv", "parquet", "numpy", "image_folder", "cifar"] = (
        "sklearn"
    )
    dataset: Literal["digits", "iris", "wine", "breast_cancer", "diabetes"] = "digits"
    path: str | None = None
    # The encoding of a CSV that is not UTF-8 (latin-1, cp1252, utf-16); UTF-8 files ignore it.
    encoding: str | None = None
    label: str | None = None
    features: list[str] | None = None
    classes: list[str] | None = None
    task: Literal["auto", "classification", "regression"] = "auto"
    as_images: bool = False
    image_size: list[int] | None = None
    grayscale: bool = False
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    scale: Literal["standard", "minmax", "none"] = "standard"
    split: SplitConfig = Field(default_factory=SplitConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    max_rows: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _files_need_a_path(self) -> DataConfig:
        if self.source in ("csv", "parquet", "numpy", "image_folder", "cifar") and not self.path:
            raise ValueError(f"data.source '{self.source}' needs data.path")
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) <= 0):
            raise ValueError(f"data.image_size must be [height, width], got {self.image_size}")
        if self.classes is not None and (
            len(self.classes) < 2 or len(set(self.classes)) != len(self.classes)
        ):
            raise ValueError(
                f"data.classes must list at least two distinct class names, got {self.classes}"
            )
        return self
