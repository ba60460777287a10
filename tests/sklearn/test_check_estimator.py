"""Both estimators pass every applicable check of sklearn's ``check_estimator``.

No check is skipped. sklearn itself leaves out the checks that do not apply: the sample-weight
checks (``fit`` has no ``sample_weight``), ``check_decision_proba_consistency`` (no
``decision_function``), the multi-label checks (not declared) and ``check_array_api_input``
(runs only with ``SCIPY_ARRAY_API=1``). Training is kept short through parameters.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from tunelab.sklearn import NeuralClassifier, NeuralRegressor

FAST = {"hidden_sizes": (16,), "lr": 0.03, "epochs": 5, "random_state": 0}


@parametrize_with_checks([NeuralClassifier(**FAST), NeuralRegressor(**FAST)])
def test_sklearn_estimator_contract(estimator, check):
    check(estimator)
