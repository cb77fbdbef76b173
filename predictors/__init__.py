"""Latency and accuracy predictors with the scikit-learn estimator API."""
