"""forest: the isolation forest as plain arrays, scored without scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest  # type: ignore[import-untyped]

from detectors.forest import Forest, ForestError

RNG = np.random.default_rng(11)


def _fitted(n_features: int = 5, **params: Any) -> tuple[Any, Forest]:
    rows = RNG.normal(size=(3000, n_features))
    rows[:, 0] = RNG.choice([0.0, 0.3], len(rows))  # few distinct values, as novelty flags
    sk = IsolationForest(random_state=0, **params).fit(rows)
    return sk, Forest.of(sk, n_features)


@pytest.mark.parametrize("params", [{}, {"n_estimators": 7, "max_samples": 40}])
def test_its_score_is_scikit_learns_score(params: dict[str, Any]) -> None:
    sk, forest = _fitted(**params)
    probe = np.vstack([RNG.normal(size=(300, 5)), RNG.normal(0, 4, (100, 5))])
    probe[:5, 0] = [0.0, 0.3, 0.15, -1.0, 9.0]
    assert np.allclose(forest.anomaly(probe), -sk.score_samples(probe), rtol=0, atol=1e-12)
    assert forest.depth == max(e.tree_.max_depth for e in sk.estimators_)


def test_it_round_trips_through_its_arrays() -> None:
    _, forest = _fitted()
    again = Forest.from_arrays(forest.arrays(), denominator=forest.denominator, n_features=5)
    probe = RNG.normal(0, 2, (50, 5))
    assert np.array_equal(again.anomaly(probe), forest.anomaly(probe))
    assert forest.anomaly(np.zeros((0, 5))).shape == (0,)
    with pytest.raises(ValueError, match="5 features"):
        forest.anomaly(np.zeros((3, 4)))


def _first_split(arrays: dict[str, Any]) -> int:
    own = np.arange(len(arrays["left"]))
    return int(np.flatnonzero(arrays["left"] != own)[0])


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda a: a["left"].__setitem__(_first_split(a) + 1, 0), "cycle|after it"),
        (lambda a: a["right"].__setitem__(0, len(a["right"]) + 5), "outside"),
        (lambda a: a["roots"].__setitem__(0, -1), "outside"),
        (lambda a: a["feature"].__setitem__(0, 9), "feature outside"),
        (lambda a: a["path"].__setitem__(3, np.inf), "finite"),
        (lambda a: a["threshold"].__setitem__(0, np.nan), "numbers"),
        (lambda a: a.pop("roots"), "missing: roots"),
        (lambda a: a.__setitem__("feature", a["feature"].astype(np.float64)), "integers"),
        (lambda a: a.__setitem__("path", a["path"][:-1]), "one length"),
        (lambda a: a.__setitem__("roots", a["roots"][:0]), "at least one tree"),
    ],
)
def test_arrays_that_are_not_trees_are_refused(break_it: Any, message: str) -> None:
    _, forest = _fitted()
    arrays = {k: v.copy() for k, v in forest.arrays().items()}
    break_it(arrays)
    with pytest.raises(ForestError, match=message):
        Forest.from_arrays(arrays, denominator=forest.denominator, n_features=5)


def test_a_chain_deeper_than_any_isolation_tree_is_refused() -> None:
    nodes = 80  # a chain: node i splits into i+1 (left) and a leaf at the end (right)
    left = np.arange(1, nodes + 1)
    left[-1] = nodes - 1
    right = np.full(nodes, nodes)
    right[-1] = nodes - 1
    arrays = {
        "feature": np.zeros(nodes + 1, dtype=np.int32),
        "threshold": np.zeros(nodes + 1),
        "left": np.append(left, nodes),
        "right": np.append(right, nodes),
        "path": np.ones(nodes + 1),
        "roots": np.array([0]),
    }
    with pytest.raises(ForestError, match="deeper than 64"):
        Forest.from_arrays(arrays, denominator=1.0, n_features=1)
    _, forest = _fitted()
    with pytest.raises(ForestError, match="denominator"):
        Forest.from_arrays(forest.arrays(), denominator=0.0, n_features=5)
