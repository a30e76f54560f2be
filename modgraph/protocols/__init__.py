"""Evaluation protocols: cross-validation splits, inner validation, standardisation fitted on training data only."""

from .cv import Split, cv_splits, fit_standardizer, min_samples, standardize, stratified_holdout, stratified_kfold

__all__ = ["Split", "cv_splits", "fit_standardizer", "min_samples", "standardize", "stratified_holdout",
           "stratified_kfold"]
