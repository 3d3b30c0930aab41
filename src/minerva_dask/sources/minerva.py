"""Minerva cloud as a tile source (``api-contract.md`` sections 6 and 7).

Sign in to the Cognito user pool (``_cognito.py``), ask the API for the image
(``GET /image/{uuid}``: name, pyramid levels, BFU uuid) and for temporary S3 credentials
(``/image/{uuid}/credentials``, else the user's own AWS credentials), read the OME-XML
``{bfu_uuid}/metadata.xml`` from the tile bucket, then read tiles.

Tile modes:

``raw`` (default)
    Raw 16-bit PNG tiles straight from S3, ``{image_uuid}/C{c}-T{t}-Z{z}-L{l}-Y{y}-X{x}.png``,
    decoded losslessly and rendered by our kernel: all 16 bits are kept.
``render-tile``
    The API's ``render-tile`` endpoint: lossy (the server keeps ``x >> 8`` and applies
    gamma 1/2.2), for users without S3 access.

Settings come from arguments, then ``MINERVA_*`` environment variables, then the
``[minerva]`` section of the config file: ``api_url`` (``MINERVA_API_URL``),
``user_pool_id`` (``MINERVA_USER_POOL_ID``), ``client_id`` (``MINERVA_CLIENT_ID``),
``region`` (``MINERVA_REGION``, default ``us-east-1``), ``bucket`` (``MINERVA_BUCKET``,
needed only when the API gives no credentials URL), ``username``/``password``
(``MINERVA_USERNAME``/``MINERVA_PASSWORD``), ``client_secret``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._redact import register_secret
from ..colors import color_hex
from ..errors import RemoteError, SourceError, SourceNotFoundError, TileReadError
from ..geometry import MINERVA_TILE_SIZE, Rect, minerva_level_sizes, tile_pieces
from ..ome_xml import PIXEL_TYPES, check_pixels, parse_ome_images
from ._http import RetryPolicy, call_with_retries
from ._minerva_session import MinervaConnection, resolve_settings
from ._tiles import decode_tile
from .base import (
    CachedHandleSource,
    ChannelInfo,
    ImageInfo,
    LevelInfo,
    default_channel_color,
    default_window,
)

__all__ = ["MinervaSource"]

logger = logging.getLogger(__name__)
_MAX_LEVELS = 64  # halving 64 times reaches one pixel from any size
MODES = ("raw", "render-tile")


class MinervaSource(CachedHandleSource):
    """An image in the Minerva cloud.

    Parameters
    ----------
    image_uuid
        The Minerva image uuid.
    mode
        ``"raw"`` (default: 16-bit tiles from S3) or ``"render-tile"`` (the API's lossy
        rendered tiles).
    api_url, user_pool_id, client_id, region, bucket, username, password, client_secret
        Settings; see the module documentation for where they come from otherwise.
    auth_flow
        ``"USER_SRP_AUTH"`` (default) or ``"USER_PASSWORD_AUTH"``.
    s3_endpoint_url, cognito_endpoint_url
        Endpoints other than AWS's (boto3's ``AWS_ENDPOINT_URL_*`` variables work too).
    max_retries, initial_delay_s, timeout_s, deadline_s, concurrency, verify
        As for the OMERO source.
    """

    server_preset = "minerva-render-tile"  # what render-tile's composites are

    def __init__(
        self,
        image_uuid: str,
        *,
        mode: str = "raw",
        api_url: str | None = None,
        user_pool_id: str | None = None,
        client_id: str | None = None,
        region: str | None = None,
        bucket: str | None = None,
        username: str | None = None,
        password: str | None = None,
        client_secret: str | None = None,
        auth_flow: str = "USER_SRP_AUTH",
        s3_endpoint_url: str | None = None,
        cognito_endpoint_url: str | None = None,
        max_retries: int = 5,
        initial_delay_s: float = 0.25,
        timeout_s: float = 30.0,
        deadline_s: float = 120.0,
        concurrency: int = 16,
        verify: bool = True,
    ) -> None:
        if mode not in MODES:
            raise SourceError(f"Minerva mode must be one of {MODES}, got {mode!r}")
        self.image_uuid = str(image_uuid)
        self.tile_mode = "raw" if mode == "raw" else "composite"
        self.io_concurrency = concurrency
        self._settings = resolve_settings(
            api_url=api_url,
            user_pool_id=user_pool_id,
            client_id=client_id,
            region=region,
            bucket=bucket,
            username=username,
            password=password,
            client_secret=client_secret,
        )
        self._settings.update(
            auth_flow=auth_flow,
            s3_endpoint_url=s3_endpoint_url,
            cognito_endpoint_url=cognito_endpoint_url,
            verify=verify,
            pool_size=max(concurrency, 4),
        )
        self._policy = RetryPolicy(
            max_retries, initial_delay_s, timeout_s=timeout_s, deadline_s=deadline_s
        )
        # one set of sessions per source and process; workers sign in for themselves
        self._key = ("minerva", self.image_uuid, secrets.token_hex(8))
        self._info: ImageInfo | None = None
        self._load_info()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (dict(self.__dict__),))

    def __repr__(self) -> str:
        return f"MinervaSource({self.image_uuid!r}, mode={self.tile_mode!r})"

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return ("minerva", self._settings["api_url"], self.image_uuid, self.tile_mode)

    def _handle_key(self) -> tuple[Any, ...]:
        return self._key

    def _open_handle(self) -> MinervaConnection:
        return MinervaConnection(self._settings, self._policy, self.image_uuid)

    def _connection(self) -> MinervaConnection:
        return self._handle()

    # -- metadata ---------------------------------------------------------------------
    def _load_info(self) -> None:
        connection = self._connection()
        try:
            response = connection.get(
                f"image/{self.image_uuid}", what=f"Minerva image {self.image_uuid}"
            )
        except RemoteError as exc:
            if exc.status in (403, 404):
                raise SourceNotFoundError(
                    f"Minerva image {self.image_uuid} not found (or no permission) at "
                    f"{connection.api}"
                ) from None
            raise
        data = response.json().get("data", {})
        folder = data.get("bfu_uuid") or data.get("fileset_uuid")
        if not folder:
            raise RemoteError(
                f"Minerva image {self.image_uuid}: the API names no BFU or "
                "fileset holding its metadata.xml"
            )
        fs = connection.fs()
        if not connection.bucket:
            raise SourceError(
                "the Minerva API gives no credentials URL to take the tile "
                "bucket from: set MINERVA_BUCKET"
            )
        self._bucket = connection.bucket
        key = f"{self._bucket}/{folder}/metadata.xml"
        try:
            xml = call_with_retries(
                lambda: fs.cat(key), what=f"s3://{key}", policy=self._policy, transient=(OSError,)
            )
        except RemoteError as exc:
            if "FileNotFoundError" in str(exc) or "NoSuchKey" in str(exc):
                raise SourceNotFoundError(
                    f"Minerva image {self.image_uuid}: s3://{key} is missing"
                ) from None
            raise
        self._info = _info_from_ome(xml, self.image_uuid, data)
        self._levels_from_api = data.get("pyramid_levels")

    # -- tiles ------------------------------------------------------------------------
    def _tile_key(self, c: int, t: int, z: int, level: int, tile_y: int, tile_x: int) -> str:
        return f"{self._bucket}/{self.image_uuid}/C{c}-T{t}-Z{z}-L{level}-Y{tile_y}-X{tile_x}.png"

    def read_region(
        self, level: int, rect: Rect, channels: Sequence[int], *, z: int = 0, t: int = 0
    ) -> np.ndarray:
        """Raw pixels ``(c, y, x)`` of ``rect`` from the 16-bit PNG tiles on S3."""
        spec = self.info.levels[level]
        out = np.empty((len(channels), int(rect.height), int(rect.width)), self.info.dtype)
        pieces = tile_pieces(rect, (spec.width, spec.height), (MINERVA_TILE_SIZE,) * 2)
        for k, channel in enumerate(channels):
            for piece in pieces:
                tile = self._read_tile(
                    channel, t, z, level, piece.tile_y, piece.tile_x, piece.tile_shape
                )
                out[k][piece.target] = tile[piece.source]
        return out

    def _read_tile(
        self,
        c: int,
        t: int,
        z: int,
        level: int,
        tile_y: int,
        tile_x: int,
        expected: tuple[int, int],
    ) -> np.ndarray:
        from botocore.exceptions import BotoCoreError

        key = f"{self._bucket}/{self.image_uuid}/C{c}-T{t}-Z{z}-L{level}-Y{tile_y}-X{tile_x}.png"
        what = (
            f"Minerva image {self.image_uuid}, tile C{c}-T{t}-Z{z}-L{level}-Y{tile_y}-"
            f"X{tile_x} (s3://{key})"
        )

        def read() -> np.ndarray:
            try:
                body = self._connection().fs().cat(key)
            except FileNotFoundError:
                raise TileReadError(f"{what} is missing") from None
            try:  # raw pixels: one band of the image's own type (16-bit PNGs)
                return decode_tile(body, expected, kind="raw", dtype=self.info.dtype)
            except ValueError as exc:  # an S3 object does not change: no retry
                raise TileReadError(f"{what}: {exc}") from None

        try:
            return call_with_retries(
                read, what=what, policy=self._policy, transient=(OSError, BotoCoreError)
            )
        except RemoteError as exc:
            raise TileReadError(str(exc)) from None

    def check_styles(self, styles: Sequence[Any]) -> None:
        """Raise ``SourceError`` if render-tile cannot draw these styles (checked early)."""
        if self.tile_mode != "composite":
            return
        for style in styles:
            if style.inverted or style.family != "linear" or getattr(style, "lut", None):
                raise SourceError(
                    f"channel {style.index + 1}: Minerva's render-tile draws linear windows "
                    "only (no inversion, quantization family or LUT); use the raw mode"
                )

    def read_composite(
        self,
        level: int,
        rect: Rect,
        channels: Sequence[Any],
        *,
        z: int = 0,
        t: int = 0,
        model: str = "color",
    ) -> np.ndarray:
        """The API's ``render-tile`` RGB ``(y, x, 3)`` of ``rect`` (lossy, gamma 1/2.2)."""
        scale = _dtype_max(self.info.dtype)
        parts = []
        for style in sorted(channels, key=lambda s: s.index):
            colour = color_hex([v * style.alpha for v in style.color])
            parts.append(f"{style.index},{colour},{style.start / scale!r},{style.end / scale!r}")
        spec = self.info.levels[level]
        out = np.empty((int(rect.height), int(rect.width), 3), np.uint8)
        connection = self._connection()
        for piece in tile_pieces(rect, (spec.width, spec.height), (MINERVA_TILE_SIZE,) * 2):
            path = (
                f"image/{self.image_uuid}/render-tile/{piece.tile_x}/{piece.tile_y}/{z}/{t}/"
                f"{level}/" + "/".join(parts)
            )
            what = (
                f"Minerva image {self.image_uuid}, level {level}, rendered tile "
                f"x={piece.tile_x} y={piece.tile_y}"
            )
            try:
                response = connection.get(path, what=what, accept="image/png")
                tile = decode_tile(response.content, piece.tile_shape, kind="rgb")
            except (RemoteError, ValueError) as exc:
                raise TileReadError(f"{what}: {exc}") from None
            out[piece.target] = tile[piece.source]
        return out


def _rebuild(state: dict[str, Any]) -> MinervaSource:
    source = MinervaSource.__new__(MinervaSource)
    source.__dict__.update(state)
    for name in ("password", "client_secret"):  # in the worker too
        register_secret(state["_settings"].get(name))
    return source


def _dtype_max(dtype: np.dtype) -> float:
    return float(np.iinfo(dtype).max) if np.dtype(dtype).kind in "ui" else 1.0


def _info_from_ome(xml: bytes, image_uuid: str, api: dict[str, Any]) -> ImageInfo:
    """ImageInfo from the OME-XML image ``Image:{uuid}`` and the API's level count."""
    try:
        images = parse_ome_images(xml)
    except ValueError as exc:
        raise RemoteError(f"Minerva image {image_uuid}: metadata.xml: {exc}") from None
    image = next((im for im in images if im.id == f"Image:{image_uuid}"), None)
    if image is None:
        ids = ", ".join(im.id for im in images)
        raise RemoteError(
            f"Minerva image {image_uuid}: metadata.xml has no Image:{image_uuid} (it has {ids})"
        )
    try:
        dtype = np.dtype(PIXEL_TYPES[image.pixel_type])
    except KeyError:
        raise SourceError(
            f"Minerva image {image_uuid}: pixel type {image.pixel_type!r} is not supported"
        ) from None
    try:
        check_pixels(image)
    except ValueError as exc:
        raise RemoteError(f"Minerva image {image_uuid}: metadata.xml: {exc}") from None
    sizes = minerva_level_sizes(image.size_x, image.size_y)
    count = api.get("pyramid_levels") or len(sizes)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= _MAX_LEVELS:
        raise RemoteError(
            f"Minerva image {image_uuid}: the API's pyramid_levels is {count!r}: "
            f"an integer from 1 to {_MAX_LEVELS} is needed"
        )
    while len(sizes) < count:  # the API may know of more levels than the rule gives
        w, h = sizes[-1]
        sizes.append(((w + 1) // 2, (h + 1) // 2))
    levels = tuple(
        LevelInfo(w, h, MINERVA_TILE_SIZE, MINERVA_TILE_SIZE, (image.size_x / w, image.size_y / h))
        for w, h in sizes[:count]
    )
    window = default_window(dtype, image.significant_bits)
    channels = []
    for i in range(image.size_c):
        ome = image.channels[i] if i < len(image.channels) else None
        name = (ome.name if ome and ome.name else None) or f"Channel {i}"
        channels.append(ChannelInfo(i, name, default_channel_color(i, image.size_c), window))
    px, py, _ = image.physical_size_um
    return ImageInfo(
        name=str(api.get("name") or image.name or image_uuid),
        dtype=dtype,
        size_c=image.size_c,
        size_z=image.size_z,
        size_t=image.size_t,
        levels=levels,
        channels=tuple(channels),
        pixel_size_um=(px, py) if px and py else None,
    )
