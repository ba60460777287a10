"""sklearn-compatible estimators (NeuralClassifier, NeuralRegressor) built on the trainer."""
