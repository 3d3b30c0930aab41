"""Renders on a real distributed LocalCluster with worker processes."""

from __future__ import annotations

import numpy as np
import pytest

import minerva_dask as md


@pytest.mark.slow
def test_local_cluster_render_equals_the_threaded_render(
    cluster_client, tiny_ome_tiff, tiny_ome_zarr
):
    request = md.parse_request(
        "/0/0/0/?c=1|500:20000$0000FF,2|0:8000$00FF00,3|300:9000$FF0000"
        "&region=-100,-50,1300,820&max_size=5000"
    )
    for path in (tiny_ome_tiff, tiny_ome_zarr):
        rendering = md.render(md.open_image(path), request, chunk_size=256)
        threaded = rendering.data.compute(scheduler="threads")
        on_cluster = cluster_client.compute(rendering.data).result()
        np.testing.assert_array_equal(on_cluster, threaded)


@pytest.mark.slow
def test_crop_with_a_client_writes_the_same_png(cluster_client, tiny_ome_tiff, tmp_path):
    from PIL import Image

    request = "/0/0/0/?c=1|500:20000$0000FF&region=0,0,1100,700&max_size=600"
    local = md.crop(request, tmp_path / "local.png", image=tiny_ome_tiff)
    remote = md.crop(
        request, tmp_path / "cluster.png", image=tiny_ome_tiff, scheduler=cluster_client
    )
    assert local.shape == remote.shape == (350, 550)
    np.testing.assert_array_equal(
        np.asarray(Image.open(local.path)), np.asarray(Image.open(remote.path))
    )


@pytest.mark.slow
def test_a_cluster_with_another_minerva_dask_is_refused_in_one_line(cluster_client, monkeypatch):
    """Its workers would unpickle our tasks with other code: refused before any work,
    naming what each machine has (here this process claims another version)."""
    import minerva_dask
    from minerva_dask.compute import compute_context

    address = cluster_client.scheduler.address
    with compute_context(address) as client:  # the same version: accepted
        assert client is not None
    monkeypatch.setattr(minerva_dask, "__version__", "9.9.9", raising=False)
    refused = pytest.raises(md.RemoteError, match=r"needs minerva-dask 9\.9\.9 .* has 0")
    with refused as caught, compute_context(address):
        pass
    assert "\n" not in str(caught.value)


def test_a_local_cluster_too_big_for_the_machine_or_beside_a_scheduler_is_refused() -> None:
    from minerva_dask.compute import check_cluster_options

    # --local-cluster 99999 started worker processes until distributed fell over
    with pytest.raises(md.RequestError, match="more worker processes than this machine"):
        check_cluster_options(None, 99999, None)
    # with --scheduler too, the scheduler was silently ignored
    with pytest.raises(md.RequestError, match="give one of them"):
        check_cluster_options("tcp://127.0.0.1:8786", 2, None)
    check_cluster_options(None, 8, None)  # 8 always allowed
    with pytest.raises(md.RequestError, match="not a int"):  # was an AttributeError
        check_cluster_options(5, None, None)


def _broken_block(block: np.ndarray, block_info=None) -> np.ndarray:
    if block_info[None]["chunk-location"][:2] == (1, 1):
        raise OSError("disk gone under block (1, 1)")
    return block


def _tasks_on(client) -> int:
    return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))


@pytest.mark.slow
@pytest.mark.parametrize("export", ["to_ome_tiff", "to_ome_zarr", "to_dzi", "to_png"])
def test_a_failed_export_on_a_client_leaves_nothing_on_the_cluster(
    cluster_client, tmp_path, export
) -> None:
    import time

    import dask.array as da
    import distributed

    mine = cluster_client.persist(da.arange(1000, chunks=100) * 2)  # the user's own data
    cluster_client.gather(distributed.futures_of(mine))  # computed and held
    held, settled = -1, _tasks_on(cluster_client)
    while held != settled:  # the user's, and what earlier tests let go of, forgotten
        time.sleep(0.1)
        held, settled = settled, _tasks_on(cluster_client)
    pixels = da.zeros((1024, 1024, 3), dtype=np.uint8, chunks=(256, 256, 3))
    broken = pixels.map_blocks(_broken_block, dtype=np.uint8)
    name = {"to_ome_tiff": "o.ome.tif", "to_ome_zarr": "o.ome.zarr", "to_dzi": "o.dzi"}
    with pytest.raises(OSError, match="block"):
        getattr(md, export)(broken, tmp_path / name.get(export, "o.png"), client=cluster_client)
    deadline = time.monotonic() + 10  # the scheduler forgets released tasks soon after
    while _tasks_on(cluster_client) > held and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _tasks_on(cluster_client) == held  # the user's chunks, nothing of the export
    assert cluster_client.compute(mine.sum()).result() == 999_000  # still there, and usable
    del mine


def _only_on_a_worker(block: np.ndarray) -> np.ndarray:
    from distributed import get_worker

    get_worker()  # ValueError outside a worker: the export ran here, not on the cluster
    return block


@pytest.mark.slow
def test_every_export_computes_on_the_default_client_as_dask_does(tmp_path) -> None:
    import dask.array as da
    import distributed
    from PIL import Image

    from minerva_dask.compute import compute_context

    pixels = da.random.default_rng(5).integers(0, 255, (600, 700, 3), dtype=np.uint8)
    image = pixels.rechunk((256, 256, 3)).map_blocks(_only_on_a_worker, dtype=np.uint8)
    expected = pixels.compute(scheduler="threads")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,  # the default client, as users make one
    ):
        with compute_context(None) as chosen:  # md.crop, crop_groups and figures
            assert chosen is client
        md.to_png(image, tmp_path / "o.png")
        md.to_ome_tiff(image, tmp_path / "o.ome.tif")
        md.to_ome_zarr(image, tmp_path / "o.ome.zarr")
        md.to_dzi(image, tmp_path / "o.dzi", tile_format="png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o.png")), expected)
    with pytest.raises(ValueError, match="No worker found"):
        image.compute(scheduler="threads")  # the check bites outside the cluster
