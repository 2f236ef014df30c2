"""Decoding, searches and the command line on a dask.distributed cluster (the dask extra).

One two-worker ``LocalCluster`` on loopback serves the whole module. Every result on the
cluster is compared with the same call in one process, and the scheduler's task stream
shows that the work did reach the workers.
"""

from __future__ import annotations

import numpy as np
import pytest
from joblib import parallel_backend
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold

import spinecls
from spinecls import DualHeadClassifier, LumbarPatchTransformer
from spinecls.cli import main
from spinecls.preprocessing import _extract

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed (pip install 'spinecls[dask]')"
)


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


@pytest.fixture
def every_call_parallel(monkeypatch):
    """Send even a six-study call to the workers (it would stay in this process)."""
    monkeypatch.setattr(_extract, "PARALLEL_MIN_FILES", 0)


def workers_used(tasks) -> set[str]:
    return {task["worker"] for task in tasks.data}


def test_patches_on_the_cluster_are_those_of_one_process(rsna_frame, client, every_call_parallel):
    transformer = LumbarPatchTransformer(patch_size=24, slices=3)
    reference = clone(transformer).set_params(n_jobs=1).transform(rsna_frame)
    with parallel_backend("dask", client=client), distributed.get_task_stream(client) as tasks:
        on_cluster = transformer.transform(rsna_frame)
    np.testing.assert_array_equal(on_cluster, reference)
    assert workers_used(tasks) == set(client.scheduler_info()["workers"])


def test_a_call_below_the_threshold_stays_in_this_process(rsna_frame, client, monkeypatch):
    assert rsna_frame["image_path"].nunique() < _extract.PARALLEL_MIN_FILES
    reference = LumbarPatchTransformer(patch_size=24).transform(rsna_frame)

    def no_workers(*args, **kwargs):
        raise AssertionError("a small call was sent to joblib's workers")

    monkeypatch.setattr(_extract, "Parallel", no_workers)
    transformer = LumbarPatchTransformer(patch_size=24, n_jobs=2)
    np.testing.assert_array_equal(transformer.transform(rsna_frame), reference)
    with parallel_backend("dask", client=client), distributed.get_task_stream(client) as tasks:
        np.testing.assert_array_equal(transformer.transform(rsna_frame), reference)
    assert tasks.data == []


def test_workers_fill_a_shared_cache_that_this_process_reads(
    rsna_frame, client, every_call_parallel, tmp_path, monkeypatch
):
    cached = LumbarPatchTransformer(patch_size=24, slices=3, memory=tmp_path / "cache")
    reference = clone(cached).set_params(memory=None).transform(rsna_frame)
    with parallel_backend("dask", client=client), distributed.get_task_stream(client) as tasks:
        np.testing.assert_array_equal(cached.transform(rsna_frame), reference)
    assert len(workers_used(tasks)) == 2

    def no_decoding(path):
        raise AssertionError(f"{path} decoded again: the workers' cache entries were missed")

    monkeypatch.setattr(spinecls.dicom, "read_slice", no_decoding)
    # a fold of two studies is a new call, served from the series the workers cached
    fold = rsna_frame[rsna_frame.study_id.isin(rsna_frame.study_id.unique()[:2])]
    np.testing.assert_array_equal(cached.transform(fold), reference[fold.index.to_numpy()])


def test_grid_search_on_the_cluster_matches_one_process(rsna_frame, client):
    X = LumbarPatchTransformer(patch_size=32).transform(rsna_frame)
    y = rsna_frame[["condition", "severity"]]
    groups = rsna_frame["study_id"].to_numpy()
    grid = GridSearchCV(
        DualHeadClassifier(max_epochs=1, batch_size=32, random_state=0),
        {"lr": [1e-3, 3e-2]},
        cv=GroupKFold(n_splits=2),
        refit=False,
    )
    here = clone(grid).set_params(n_jobs=1).fit(X, y, groups=groups)
    with parallel_backend("dask", client=client), distributed.get_task_stream(client) as tasks:
        there = grid.fit(X, y, groups=groups)
    assert len(workers_used(tasks)) == 2
    assert there.best_params_ == here.best_params_
    for key in ("split0_test_score", "split1_test_score", "mean_test_score", "rank_test_score"):
        np.testing.assert_array_equal(there.cv_results_[key], here.cv_results_[key])


def test_cli_scheduler_decodes_on_the_cluster(rsna_root, client, every_call_parallel, tmp_path):
    address = client.scheduler.address
    model = tmp_path / "model.pt"
    with distributed.get_task_stream(client) as tasks:
        code = main(
            ["train", "--data", str(rsna_root), "--out", str(model), "--epochs", "1",
             "--patch-size", "32", "--size", "32", "--scheduler", address]
        )  # fmt: skip
    assert code == 0 and model.is_file()
    assert len(workers_used(tasks)) == 2
