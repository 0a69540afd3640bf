from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rvperceiver.data.index import SampleIndex, split_episodes
from rvperceiver.errors import DataError, InputError


def test_build_small_example() -> None:
    index = SampleIndex.build([5, 4, 6], t_obs=2, t_pred=2)
    assert index.pairs.dtype == np.int64 and index.pairs.shape == (2 + 1 + 3, 2)
    assert index.pairs.tolist() == [[0, 0], [0, 1], [1, 0], [2, 0], [2, 1], [2, 2]]
    assert len(index) == 6 and index[3] == (2, 0)
    np.testing.assert_array_equal(np.asarray(index), index.pairs)


def test_short_episode_is_named_or_skipped_with_warning() -> None:
    with pytest.raises(DataError, match=r"episode 1 \('demo_7'\) has 3 steps.*2 \+ 2 = 4"):
        SampleIndex.build([6, 3, 5], 2, 2, names=["demo_0", "demo_7", "demo_9"])
    with pytest.warns(UserWarning, match="demo_7.*length 3"):
        index = SampleIndex.build([6, 3, 5], 2, 2, names=["demo_0", "demo_7", "demo_9"], skip_short=True)
    assert 1 not in set(index.pairs[:, 0].tolist())
    assert len(index) == 3 + 2
    with pytest.raises(DataError, match="no episode"), pytest.warns(UserWarning):
        SampleIndex.build([1, 2], 2, 2, skip_short=True)


@pytest.mark.parametrize(("t_obs", "t_pred"), [(0, 2), (2, 0), (-1, 1), (1.5, 1), (True, 1)])
def test_bad_window_arguments(t_obs: object, t_pred: object) -> None:
    with pytest.raises(InputError):
        SampleIndex.build([10], t_obs, t_pred)  # type: ignore[arg-type]


def test_no_episodes_is_an_error() -> None:
    with pytest.raises(DataError, match="no episodes"):
        SampleIndex.build([], 1, 1)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 40), min_size=1, max_size=12),
    t_obs=st.integers(1, 5),
    t_pred=st.integers(1, 8),
)
def test_every_sample_lies_inside_one_episode(lengths: list[int], t_obs: int, t_pred: int) -> None:
    window = t_obs + t_pred
    if all(n < window for n in lengths):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        index = SampleIndex.build(lengths, t_obs, t_pred, skip_short=True)
    episodes, starts = index.pairs[:, 0], index.pairs[:, 1]
    ends = starts + window  # one past the last target step
    assert np.all(starts >= 0)
    assert np.all(ends <= np.asarray(lengths)[episodes])
    assert len(index) == sum(max(n - window + 1, 0) for n in lengths)
    assert len({tuple(p) for p in index.pairs.tolist()}) == len(index)
    order = np.lexsort((starts, episodes))
    np.testing.assert_array_equal(order, np.arange(len(index)))


@settings(max_examples=60, deadline=None)
@given(count=st.integers(2, 40), valid_fraction=st.floats(0.01, 0.99), seed=st.integers(0, 2**31))
def test_random_split_is_disjoint_covering_and_seeded(count: int, valid_fraction: float, seed: int) -> None:
    names = [f"demo_{i}" for i in range(count)]
    train, valid = split_episodes(names, valid_fraction, seed)
    assert train and valid
    assert not set(train) & set(valid)
    assert sorted(train + valid) == sorted(names)
    assert train == [n for n in names if n in set(train)]  # original order kept
    assert (train, valid) == split_episodes(names, valid_fraction, seed)


def test_split_size_and_seed_dependence() -> None:
    names = [f"e{i}" for i in range(20)]
    train, valid = split_episodes(names, 0.25, seed=0)
    assert len(valid) == 5 and len(train) == 15
    others = {tuple(split_episodes(names, 0.25, seed=s)[1]) for s in range(1, 6)}
    assert len(others | {tuple(valid)}) > 1


def test_given_splits_are_used_and_checked() -> None:
    names = ["demo_0", "demo_1", "demo_2", "demo_3"]
    splits = {"train": ["demo_3", "demo_0"], "valid": ["demo_2"]}
    assert split_episodes(names, 0.5, 0, splits=splits) == (["demo_0", "demo_3"], ["demo_2"])
    with pytest.raises(DataError, match=r"share episodes \['demo_0'\]"):
        split_episodes(names, 0.5, 0, splits={"train": ["demo_0", "demo_1"], "valid": ["demo_0"]})
    with pytest.raises(DataError, match="demo_9"):
        split_episodes(names, 0.5, 0, splits={"train": ["demo_9"], "valid": ["demo_0"]})
    with pytest.raises(DataError, match="'valid' is empty"):
        split_episodes(names, 0.5, 0, splits={"train": ["demo_1"], "valid": []})
    # Only a train split (LeRobot's default): fall back to the seeded split.
    train, valid = split_episodes(names, 0.5, 0, splits={"train": names})
    assert len(valid) == 2 and sorted(train + valid) == names


def test_single_episode_and_zero_fraction() -> None:
    with pytest.raises(DataError, match="no validation split is possible"):
        split_episodes(["only"], 0.2, 0)
    assert split_episodes(["only"], 0.0, 0) == (["only"], [])
    assert split_episodes(["a", "b"], 0.0, 0) == (["a", "b"], [])


def test_bad_split_arguments() -> None:
    with pytest.raises(InputError, match="valid_fraction"):
        split_episodes(["a", "b"], 1.0, 0)
    with pytest.raises(InputError, match="valid_fraction"):
        split_episodes(["a", "b"], -0.1, 0)
    with pytest.raises(DataError, match="no episodes"):
        split_episodes([], 0.1, 0)
    with pytest.raises(DataError, match="duplicate"):
        split_episodes(["a", "a"], 0.5, 0)
