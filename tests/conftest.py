"""Shared test data."""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def digits(classes, random_state=0):
    """Standardised digits of ``classes`` (constant pixels dropped), split 80/20."""
    data = load_digits()
    mask = np.isin(data.target, classes)
    X, y = data.data[mask], data.target[mask]
    X = X[:, X.std(axis=0) > 0]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=random_state, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test
