"""Minerva's per-process connection: settings, Cognito sign-in, the API session and the
S3 filesystem with temporary credentials (``api-contract.md`` 6).

Settings come from arguments, then ``MINERVA_*`` environment variables, then the
``[minerva]`` section of the config file. Passwords, client secrets and temporary S3
keys are registered as secrets the moment they are read.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

import requests

from .._config import setting
from .._redact import register_secret
from ..errors import AuthError, RemoteError, SourceError
from ._cognito import CognitoConfig, CognitoSession
from ._http import RetryPolicy, make_session, request_with_retries

__all__ = ["MinervaConnection", "resolve_settings"]

logger = logging.getLogger(__name__)

_SETTINGS = {  # name: (environment variable, default)
    "api_url": ("MINERVA_API_URL", None),
    "user_pool_id": ("MINERVA_USER_POOL_ID", None),
    "client_id": ("MINERVA_CLIENT_ID", None),
    "region": ("MINERVA_REGION", "us-east-1"),
    "bucket": ("MINERVA_BUCKET", None),
    "username": ("MINERVA_USERNAME", None),
    "password": ("MINERVA_PASSWORD", None),
    "client_secret": ("MINERVA_CLIENT_SECRET", None),
}


def resolve_settings(**given: Any) -> dict[str, Any]:
    """Each Minerva setting from the arguments, the environment or the config file."""
    out = {}
    for name, (env, default) in _SETTINGS.items():
        value = given.get(name) or setting("minerva", name, env) or default
        out[name] = value
    missing = [
        f"{name} ({_SETTINGS[name][0]})"
        for name in ("api_url", "user_pool_id", "client_id")
        if not out[name]
    ]
    if missing:
        raise SourceError(
            f"Minerva needs {', '.join(missing)}: pass them as options, set the "
            "environment variables, or put them in the config file's [minerva]"
        )
    for name in ("password", "client_secret"):
        register_secret(out[name])
    for name in ("username", "password"):
        if not out[name]:
            raise AuthError(
                f"must have {_SETTINGS[name][0]} in environ (or the [minerva] "
                f"section of the config file) to sign in to Minerva"
            )
    return out


class MinervaConnection:
    """Per process: the Cognito session, the API HTTP session, the S3 filesystem."""

    def __init__(self, settings: dict[str, Any], policy: RetryPolicy, image_uuid: str) -> None:
        self.settings, self.policy, self.image_uuid = settings, policy, image_uuid
        self.api = settings["api_url"].rstrip("/")
        self.cognito = CognitoSession(
            CognitoConfig(
                settings["user_pool_id"],
                settings["client_id"],
                settings["region"],
                client_secret=settings["client_secret"],
                endpoint_url=settings.get("cognito_endpoint_url"),
                auth_flow=settings.get("auth_flow", "USER_SRP_AUTH"),
            ),
            settings["username"],
            settings["password"],
        )
        self.http = make_session(
            pool_size=settings.get("pool_size", 16), verify=settings.get("verify", True)
        )
        self._lock = threading.Lock()
        self._fs: Any = None
        self._fs_expires = 0.0
        self.bucket: str | None = settings.get("bucket")
        self.credential_fetches = 0

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, *, what: str, accept: str = "application/json") -> requests.Response:
        """GET an API path with the IdToken; refresh the token once on a 401."""
        url = f"{self.api}/{path.lstrip('/')}"
        for attempt in range(2):
            token = self.cognito.id_token()
            try:
                return request_with_retries(  # type: ignore[return-value]
                    self.http,
                    "GET",
                    url,
                    what=what,
                    policy=self.policy,
                    headers={"Authorization": token, "Accept": accept},
                    on_response=_raise_if_unauthorized,
                )
            except _Unauthorized as exc:
                if attempt:
                    raise AuthError(
                        f"the Minerva API refused {what} with a fresh token: {exc}"
                    ) from None
                self.cognito.invalidate(token)
        raise AssertionError("unreachable")

    def fs(self) -> Any:
        """An s3fs filesystem with valid credentials (temporary ones from the API if any)."""
        with self._lock:
            if self._fs is not None and time.time() < self._fs_expires - 300:
                return self._fs
            import s3fs

            options: dict[str, Any] = {"skip_instance_cache": True}
            credentials = self._temporary_credentials()
            if credentials:
                options.update(
                    key=credentials["AccessKeyId"],
                    secret=credentials["SecretAccessKey"],
                    token=credentials.get("SessionToken"),
                )
                self._fs_expires = _expiry(credentials.get("Expiration"))
            else:
                self._fs_expires = float("inf")
            if self.settings.get("s3_endpoint_url"):
                options["client_kwargs"] = {"endpoint_url": self.settings["s3_endpoint_url"]}
            self._fs = s3fs.S3FileSystem(**options)
            return self._fs

    def _temporary_credentials(self) -> dict[str, Any] | None:
        try:
            response = self.get(
                f"image/{self.image_uuid}/credentials",
                what=f"S3 credentials for Minerva image {self.image_uuid}",
            )
        except RemoteError as exc:
            if exc.status in (403, 404):
                logger.info("the Minerva API gives no S3 credentials; using your own AWS ones")
                return None
            raise
        data = response.json().get("data", {})
        self.credential_fetches += 1
        for value in (data.get("credentials") or {}).values():
            register_secret(value)
        url = data.get("image_url", "")
        if url.startswith("s3://"):
            self.bucket = url[5:].split("/", 1)[0]
        return data.get("credentials")


class _Unauthorized(Exception):
    pass


def _raise_if_unauthorized(response: requests.Response) -> None:
    if response.status_code == 401:
        try:
            message = response.json().get("message", "Unauthorized")
        except ValueError:
            message = "Unauthorized"
        raise _Unauthorized(message)


def _expiry(text: str | None) -> float:
    if not text:
        return float("inf")
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() + 600
