"""Outputs on S3 (moto in server mode): an OME-TIFF is written here and uploaded whole;
the old object survives a failed export; the CLI takes an s3:// output of either format."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import minerva_dask as md
from minerva_dask.cli import main
from tests.failing_source import FailingSource
from tests.writers.test_export import REQUEST


@pytest.fixture
def bucket(moto_server):
    s3fs = pytest.importorskip("s3fs")
    options = {"client_kwargs": {"endpoint_url": moto_server}}
    fs = s3fs.S3FileSystem(**options)
    fs.makedirs("tiff-out", exist_ok=True)
    return fs, options


def _tiff_levels(fs, key: str) -> list[np.ndarray]:
    with fs.open(key, "rb") as fh, tifffile.TiffFile(fh) as tif:
        return [level.asarray() for level in tif.series[0].levels]


@pytest.mark.slow
def test_an_ome_tiff_to_s3_is_uploaded_whole_and_replaced_only_when_asked(
    tiny_ome_tiff, tmp_path, bucket
) -> None:
    fs, options = bucket
    url = "s3://tiff-out/slide.ome.tif"
    local = md.crop(REQUEST, tmp_path / "local.ome.tif", image=tiny_ome_tiff, chunk=256)
    remote = md.crop(REQUEST, url, image=tiny_ome_tiff, chunk=256, output_storage_options=options)
    assert remote.path == url and remote.shape == local.shape
    with tifffile.TiffFile(local.path) as tif:
        want = [level.asarray() for level in tif.series[0].levels]
    for got, expected in zip(_tiff_levels(fs, url), want, strict=True):
        np.testing.assert_array_equal(got, expected)
    before = fs.cat_file(url)
    with pytest.raises(md.OutputError, match="exists"):
        md.crop(REQUEST, url, image=tiny_ome_tiff, output_storage_options=options)
    failing = FailingSource(md.open_image(tiny_ome_tiff), 600)
    with pytest.raises(OSError, match="the network went away"):
        md.crop(
            REQUEST, url, image=failing, chunk=256, overwrite=True, output_storage_options=options
        )
    assert fs.cat_file(url) == before  # the old object, untouched
    assert fs.ls("tiff-out", refresh=True) == ["tiff-out/slide.ome.tif"]  # nothing else
    other = REQUEST.replace("500:20000", "0:100")
    md.crop(other, url, image=tiny_ome_tiff, overwrite=True, output_storage_options=options)
    assert fs.cat_file(url) != before


@pytest.mark.slow
def test_cli_writes_both_formats_to_s3_and_refuses_other_remote_tiffs(
    tiny_ome_tiff, bucket, moto_server, capsys, monkeypatch
) -> None:
    fs, _ = bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)  # as a user of the CLI would
    args = ["crop", REQUEST, "--image", str(tiny_ome_tiff), "-q"]
    assert main([*args, "-o", "s3://tiff-out/cli.ome.tiff"]) == 0, capsys.readouterr()
    assert main([*args, "-o", "s3://tiff-out/cli.ome.zarr"]) == 0, capsys.readouterr()
    fs.invalidate_cache()
    assert fs.exists("tiff-out/cli.ome.tiff") and fs.exists("tiff-out/cli.ome.zarr/zarr.json")
    capsys.readouterr()
    assert main([*args[:-1], "-o", "s3://tiff-out/cli2.ome.zarr"]) == 0  # a remote store's
    assert "px, 0 B)" not in capsys.readouterr().err  # size is not measured: not "0 B"
    assert main([*args, "-o", "https://example.org/x.ome.tif"]) == 2
    # (moto's server runs in this process: its werkzeug request log is not ours)
    err = [line for line in capsys.readouterr().err.splitlines() if "werkzeug" not in line]
    assert len(err) == 1 and "s3://" in err[0] and "write it locally" in err[0]


def test_refused_s3_credentials_are_not_reported_as_a_missing_bucket(monkeypatch) -> None:
    from minerva_dask.writers import _store

    class Refusing:  # s3fs with a key id S3 does not know: exists() False, ls() refused
        def exists(self, path):
            return False

        def invalidate_cache(self, path=None):
            pass

        def ls(self, path):
            raise PermissionError("The AWS Access Key Id you provided does not exist")

    class Missing(Refusing):
        def ls(self, path):
            raise FileNotFoundError("The specified bucket does not exist")

    for fs, words in (
        (Refusing(), "access to bucket 'lab' denied: The AWS Access Key Id"),
        (Missing(), "bucket 'lab' does not exist"),
    ):
        monkeypatch.setattr(_store, "store_fs", lambda url, options, fs=fs: (fs, "lab/a.ome.zarr"))
        with pytest.raises(md.OutputError, match=words):
            _store.open_destination("s3://lab/a.ome.zarr", {})


def test_a_stopped_upload_aborts_its_own_multipart_upload(monkeypatch, tmp_path) -> None:
    from minerva_dask.writers import _upload
    from minerva_dask.writers._meta import ExportResult

    class Bucket:  # s3fs stopped mid-upload (SIGTERM raises in the main thread)
        def __init__(self) -> None:
            self.uploads = {"someone-else": "lab/a.ome.tif"}
            self.aborted: list[str] = []

        def exists(self, key):
            return False

        def split_path(self, key):
            return key.split("/", 1)[0], key.split("/", 1)[1], None

        def call_s3(self, method, **kw):
            if method == "abort_multipart_upload":
                self.aborted.append(kw["UploadId"])
                return {}
            found = [{"Key": k.split("/", 1)[1], "UploadId": u} for u, k in self.uploads.items()]
            return {"Uploads": found}

        def put_file(self, local, key):
            self.uploads["ours"] = key
            raise KeyboardInterrupt

    fs = Bucket()
    monkeypatch.setattr(_upload, "open_destination", lambda url, options: (fs, "lab/a.ome.tif"))

    def write(path):
        open(path, "wb").close()
        return ExportResult(path, (1, 1), 1, 1, 0, 0, 0.0)

    with pytest.raises(KeyboardInterrupt):
        _upload.to_remote_file(write, "s3://lab/a.ome.tif")
    assert fs.aborted == ["ours"]  # its parts gone; another upload to the key untouched


def test_an_endpoint_lost_mid_upload_is_one_error_not_an_unexpected_one(monkeypatch) -> None:
    from minerva_dask.writers import _upload
    from minerva_dask.writers._meta import ExportResult

    class EndpointConnectionError(Exception):  # botocore's: not an OSError
        pass

    class Bucket:
        def exists(self, key):
            return False

        def split_path(self, key):
            return "lab", "a.ome.tif", None

        def call_s3(self, method, **kw):
            return {}

        def put_file(self, local, key):
            raise EndpointConnectionError('Could not connect to the endpoint URL: "http://s3"')

    monkeypatch.setattr(_upload, "open_destination", lambda url, options: (Bucket(), "lab/a"))

    def write(path):
        open(path, "wb").close()
        return ExportResult(path, (1, 1), 1, 1, 0, 0, 0.0)

    with pytest.raises(md.OutputError, match=r"cannot upload s3://lab/a\.ome\.tif: Endpoint"):
        _upload.to_remote_file(write, "s3://lab/a.ome.tif")


def test_a_store_endpoint_lost_mid_export_is_one_error_saying_resume(
    tiny_ome_tiff, bucket, monkeypatch
) -> None:
    from botocore.exceptions import EndpointConnectionError

    from minerva_dask.writers import ome_zarr

    def lost(*args, **kwargs):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1/tiff-out/z/0/c/0/0/0")

    monkeypatch.setattr(ome_zarr, "_write_store", lost)
    _, options = bucket
    rendering = md.render(md.open_image(tiny_ome_tiff), md.parse_request(REQUEST))
    with pytest.raises(md.OutputError, match=r"Could not connect.*--resume"):
        md.to_ome_zarr(rendering, "s3://tiff-out/z.ome.zarr", storage_options=options)


@pytest.mark.slow
def test_resuming_a_complete_remote_store_does_not_suggest_overwrite(tiny_ome_tiff, bucket) -> None:
    # it said "overwrite=True replaces it", which a remote store then refuses
    _, options = bucket
    url = "s3://tiff-out/complete.ome.zarr"
    md.crop(REQUEST, url, image=tiny_ome_tiff, output_storage_options=options)
    with pytest.raises(md.OutputError, match="complete export; delete it first") as info:
        md.crop(REQUEST, url, image=tiny_ome_tiff, output_storage_options=options, resume=True)
    assert "overwrite" not in str(info.value)
