"""NeuralClassifier / NeuralRegressor on real bundled data, inside sklearn's model selection."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tunelab.errors import ConfigError
from tunelab.sklearn import NeuralClassifier, NeuralRegressor


def test_grid_search_over_lr_and_hidden_size_on_breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    grid = {"lr": [1e-4, 1e-2], "hidden_sizes": [(2,), (64,)]}
    search = GridSearchCV(
        NeuralClassifier(epochs=20, batch_size=64, random_state=0), grid, cv=3
    ).fit(X_tr, y_tr)
    scores = dict(
        zip(
            map(str, search.cv_results_["params"]),
            search.cv_results_["mean_test_score"],
            strict=True,
        )
    )
    assert len(scores) == 4
    # 20 epochs at lr 1e-4 is far too little; the search must see that and pick lr 1e-2.
    assert search.best_params_["lr"] == 1e-2
    assert search.best_score_ > 0.95
    assert max(scores.values()) - min(scores.values()) > 0.1
    baseline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_tr, y_tr)
    assert search.score(X_te, y_te) >= baseline.score(X_te, y_te) - 0.02


def test_randomized_search_as_in_the_seed_articles_on_iris():
    X, y = load_iris(return_X_y=True)
    search = RandomizedSearchCV(
        NeuralClassifier(epochs=20, random_state=0),
        {"lr": loguniform(3e-3, 3e-2), "hidden_sizes": [(8,), (32,)]},
        n_iter=3,
        cv=3,
        random_state=0,
    ).fit(X, y)
    assert search.best_score_ > 0.9
    assert set(search.best_params_) == {"lr", "hidden_sizes"}


def test_same_random_state_gives_the_same_model_and_another_one_differs():
    X, y = load_iris(return_X_y=True)
    a = NeuralClassifier(epochs=5, random_state=1).fit(X, y).predict_proba(X)
    b = NeuralClassifier(epochs=5, random_state=1).fit(X, y).predict_proba(X)
    c = NeuralClassifier(epochs=5, random_state=2).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_early_stopping_holds_out_a_split_and_stops_before_the_epoch_limit():
    X, y = load_breast_cancer(return_X_y=True)
    clf = NeuralClassifier(
        lr=0.05, epochs=300, early_stopping=True, patience=3, random_state=0
    ).fit(X, y)
    assert clf.n_iter_ < 300 and clf.fit_status_ == "early_stopped"
    assert "val_loss" in clf.history_[0]
    assert clf.best_epoch_ <= clf.n_iter_


def test_string_labels_come_back_as_strings_and_proba_columns_follow_classes():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = NeuralClassifier(lr=0.02, epochs=30, random_state=0).fit(X, names)
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
    assert (clf.predict(X) == names).mean() > 0.9
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (clf.classes_[proba.argmax(axis=1)] == clf.predict(X)).all()


def test_cnn_builder_on_digit_images_through_input_shape():
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    clf = NeuralClassifier(
        builder="cnn",
        input_shape=(1, 8, 8),
        builder_params={"channels": [8, 16], "hidden": 32},
        lr=3e-3,
        epochs=8,
        random_state=0,
    ).fit(X_tr, y_tr)
    assert clf.spec_.builder == "cnn" and clf.model_.head.out_features == 10
    assert clf.score(X_te, y_te) > 0.9


def test_regressor_on_diabetes_is_as_good_as_linear_regression():
    X, y = load_diabetes(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0)
    reg = NeuralRegressor(
        hidden_sizes=(16,),
        lr=3e-3,
        weight_decay=1e-3,
        epochs=60,
        early_stopping=True,
        random_state=0,
    ).fit(X_tr, y_tr)
    linear = LinearRegression().fit(X_tr, y_tr).score(X_te, y_te)
    assert reg.score(X_te, y_te) > linear - 0.05
    assert reg.predict(X_te).shape == (len(X_te),)


def test_regressor_predicts_every_target_column():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    Y = np.stack([X[:, 0] * 100 + 5, -X[:, 1]], axis=1)
    reg = NeuralRegressor(hidden_sizes=(32,), lr=0.01, epochs=60, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (200, 2)
    assert reg.score(X, Y) > 0.9


def test_estimators_clone_and_sit_in_a_pipeline():
    X, y = load_iris(return_X_y=True)
    est = NeuralClassifier(hidden_sizes=(8, 8), lr=0.02, epochs=20, random_state=0)
    copy = clone(est)
    assert copy.get_params() == est.get_params() and not hasattr(copy, "model_")
    pipe = make_pipeline(StandardScaler(), copy).fit(X, y)
    assert pipe.score(X, y) > 0.9


def test_bad_builder_parameters_are_one_line_config_errors():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ConfigError, match=r"model\.params\.dept .*accepted parameters"):
        NeuralClassifier(builder_params={"dept": 2}, epochs=1).fit(X, y)
    with pytest.raises(ValueError, match=r"input_shape=\(2, 3\) holds 6 values .* 4 features"):
        NeuralClassifier(input_shape=(2, 3), epochs=1).fit(X, y)


def test_standardize_off_uses_raw_features_and_an_int_hidden_size_is_one_layer():
    X, y = load_iris(return_X_y=True)
    clf = NeuralClassifier(
        hidden_sizes=12, standardize=False, lr=0.02, epochs=30, random_state=0
    ).fit(X, y)
    assert clf.x_mean_ is None and clf.spec_.params["widths"] == [12]
    assert clf.score(X, y) > 0.9
    # Scaling is learned state: turning it on after fit changes nothing until the next fit.
    before = clf.predict_proba(X)
    clf.set_params(standardize=True)
    np.testing.assert_array_equal(clf.predict_proba(X), before)
