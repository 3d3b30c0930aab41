"""An emulating Minerva API Gateway (era A, ``api-contract.md`` 6.1) on 127.0.0.1, and a
publisher that lays images out in (moto) S3 the way Minerva's bfextractor did.

The gateway checks every IdToken against the moto user pool's JWKS (signature, expiry,
audience) and answers 401 ``{"message": "Unauthorized"}`` otherwise. It serves
``/image/{uuid}``, ``/image/{uuid}/credentials`` and ``render-tile`` with the lossy 2018
maths (``x >> 8``, window in 0..1, additive, clip, gamma 1/2.2, round half to even).
It imports nothing from minerva_dask.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

import imagecodecs
import jwt
import numpy as np
import requests

from tests.servers import LoopbackServer

TILE = 1024


def level_arrays(level0: np.ndarray) -> list[np.ndarray]:
    """bfextractor's pyramid shape: ceil halving until one tile holds the image.

    (bfextractor smoothed with a Gaussian; any downsampling serves the tests, which compare
    every level with what was published.) ``level0`` is ``(c, y, x)``.
    """
    levels = [level0]
    while max(levels[-1].shape[1:]) > TILE:
        prev = levels[-1].astype(np.float64)
        _, h, w = prev.shape
        padded = np.pad(prev, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")
        mean = (
            padded[:, 0::2, 0::2]
            + padded[:, 1::2, 0::2]
            + padded[:, 0::2, 1::2]
            + padded[:, 1::2, 1::2]
        ) / 4
        levels.append(np.round(mean).astype(level0.dtype))
    return levels


def publish_image(
    s3: Any, bucket: str, image_uuid: str, bfu_uuid: str, level0: np.ndarray, ome_xml: str
) -> list[np.ndarray]:
    """Upload tiles ``{image_uuid}/C{c}-T0-Z0-L{l}-Y{y}-X{x}.png`` (16-bit grey PNG) and
    ``{bfu_uuid}/metadata.xml`` with the image id rewritten to ``Image:{image_uuid}``."""
    levels = level_arrays(level0)
    for level, data in enumerate(levels):
        for c in range(data.shape[0]):
            for ty in range(math.ceil(data.shape[1] / TILE)):
                for tx in range(math.ceil(data.shape[2] / TILE)):
                    tile = np.ascontiguousarray(
                        data[c, ty * TILE : (ty + 1) * TILE, tx * TILE : (tx + 1) * TILE]
                    )
                    s3.put_object(
                        Bucket=bucket,
                        ContentType="image/png",
                        Key=f"{image_uuid}/C{c}-T0-Z0-L{level}-Y{ty}-X{tx}.png",
                        Body=imagecodecs.png_encode(tile),
                    )
    xml = re.sub(r'(<Image [^>]*ID=")Image:[^"]*"', rf'\g<1>Image:{image_uuid}"', ome_xml, count=1)
    s3.put_object(Bucket=bucket, Key=f"{bfu_uuid}/metadata.xml", Body=xml.encode())
    return levels


@dataclass
class MinervaWorld:
    """The gateway's state and switches."""

    moto_url: str
    pool_id: str
    client_id: str
    bucket: str
    images: dict[str, dict[str, Any]]  # uuid -> {"name", "bfu_uuid", "pyramid_levels"}
    credentials: bool = True  # serve /credentials (else 404: users use their own AWS keys)
    credentials_lifetime_s: float = 3600.0
    sts_keys: tuple[str, str] = ("testing", "testing")  # the temporary (key id, secret) served
    max_token_age_s: float | None = None  # refuse tokens issued longer ago than this
    other_clients: set[str] = field(default_factory=set)  # more app clients of the pool
    counts: dict[str, int] = field(
        default_factory=lambda: {
            "requests": 0,
            "unauthorized": 0,
            "expired": 0,
            "credentials": 0,
            "render": 0,
        }
    )
    lock: threading.Lock = field(default_factory=threading.Lock)
    _jwks: dict[str, Any] | None = None

    def keys(self) -> dict[str, Any]:
        if self._jwks is None:
            url = f"{self.moto_url}/{self.pool_id}/.well-known/jwks.json"
            self._jwks = {k["kid"]: k for k in requests.get(url, timeout=10).json()["keys"]}
        return self._jwks

    def check(self, header: str | None) -> str | None:
        """None if the token is good, else the 401 message."""
        if not header:
            return "Unauthorized"
        token = header[7:] if header.startswith("Bearer ") else header
        try:
            kid = jwt.get_unverified_header(token)["kid"]
            claims = jwt.decode(
                token,
                jwt.PyJWK(self.keys()[kid]).key,
                algorithms=["RS256"],
                audience=[self.client_id, *self.other_clients],
                options={"verify_iss": False},
            )
        except jwt.ExpiredSignatureError:
            return "The incoming token has expired"
        except (jwt.PyJWTError, KeyError):
            return "Unauthorized"
        if claims.get("token_use") != "id":
            return "Unauthorized"
        if self.max_token_age_s is not None and time.time() - claims["iat"] > self.max_token_age_s:
            return "The incoming token has expired"
        return None


def render_tile_maths(
    tiles16: list[np.ndarray], specs: list[tuple[np.ndarray, float, float]]
) -> np.ndarray:
    """Minerva 2018 render-tile: x8 = x >> 8, window in 0..1, additive, gamma 1/2.2."""
    out = np.zeros((*tiles16[0].shape, 3), np.float64)
    for tile, (colour, low, high) in zip(tiles16, specs, strict=True):
        x8 = (tile >> 8).astype(np.float64)
        v = (
            np.clip((x8 / 255 - low) / (high - low), 0, 1)
            if high > low
            else (x8 / 255 >= high) * 1.0
        )
        out += v[..., np.newaxis] * colour
    out = np.clip(out, 0, 1) ** (1 / 2.2)
    return np.rint(out * 255).astype(np.uint8)  # cv2's float -> uint8: round half to even


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    world: MinervaWorld
    s3: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode())

    def do_GET(self) -> None:
        world = self.world
        with world.lock:
            world.counts["requests"] += 1
        refusal = world.check(self.headers.get("Authorization"))
        if refusal:
            with world.lock:
                world.counts["expired" if "expired" in refusal else "unauthorized"] += 1
            return self._json(401, {"message": refusal})
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if len(parts) < 2 or parts[0] != "image":
            return self._json(404, {"message": "Not Found"})
        uuid = parts[1]
        image = world.images.get(uuid)
        if image is None:
            return self._json(404, {"error": f"Image {uuid} does not exist"})
        if len(parts) == 2:
            return self._json(
                200,
                {
                    "data": {
                        "uuid": uuid,
                        "name": image["name"],
                        "pyramid_levels": image["pyramid_levels"],
                        "bfu_uuid": image["bfu_uuid"],
                    },
                    "included": {},
                },
            )
        if parts[2] == "credentials" and world.credentials:
            with world.lock:
                world.counts["credentials"] += 1
            expires = datetime.now(UTC) + timedelta(seconds=world.credentials_lifetime_s)
            return self._json(
                200,
                {
                    "data": {
                        "image_url": f"s3://{world.bucket}/{uuid}/",
                        "bfu_url": f"s3://{world.bucket}/{image['bfu_uuid']}/",
                        "credentials": {
                            "AccessKeyId": world.sts_keys[0],
                            "SecretAccessKey": world.sts_keys[1],
                            "SessionToken": f"session-{world.counts['credentials']}",
                            "Expiration": expires.isoformat(),
                        },
                    },
                    "included": {},
                },
            )
        if parts[2] == "render-tile" and len(parts) >= 9:
            return self._render_tile(uuid, parts[3:])
        self._json(404, {"message": "Not Found"})

    def _render_tile(self, uuid: str, args: list[str]) -> None:
        try:
            x, y, z, t, level = (int(v) for v in args[:5])
        except ValueError:
            return self._json(400, {"error": "x, y, z, t and level must be integers"})
        specs, tiles = [], []
        for spec in args[5:]:
            fields = spec.split(",")
            if len(fields) != 4 or not re.fullmatch(r"[0-9A-Fa-f]{6}", fields[1]):
                return self._json(422, {"error": f"bad channel spec {spec}"})
            index = int(fields[0])
            colour = np.array([int(fields[1][i : i + 2], 16) / 255 for i in (0, 2, 4)])
            key = f"{uuid}/C{index}-T{t}-Z{z}-L{level}-Y{y}-X{x}.png"
            try:
                body = self.s3.get_object(Bucket=self.world.bucket, Key=key)["Body"].read()
            except self.s3.exceptions.NoSuchKey:
                return self._json(404, {"error": f"tile index out of range: {key}"})
            tiles.append(imagecodecs.png_decode(body))
            specs.append((colour, float(fields[2]), float(fields[3])))
        with self.world.lock:
            self.world.counts["render"] += 1
        self._send(200, imagecodecs.png_encode(render_tile_maths(tiles, specs)), "image/png")


class MinervaApi(LoopbackServer):
    """``with MinervaApi(world, s3_client) as api:`` serves on ``api.url``."""

    def __init__(self, world: MinervaWorld, s3: Any) -> None:
        handler = type("Handler", (_Handler,), {"world": world, "s3": s3})
        self.world = world
        super().__init__(handler)
