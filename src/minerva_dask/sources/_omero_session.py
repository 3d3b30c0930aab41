"""A logged-in, pooled HTTP session to one OMERO.web server (``api-contract.md`` 5).

The JSON-API login (CSRF token, server list, POST) and the renewal of an expired session
go through the network policy of :mod:`._http`; URLs the server advertises are followed
only on the scheme and host the user named. Credentials are registered as secrets the
moment they are read, so no message or log can print them.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any
from urllib.parse import urljoin

import requests

from .._redact import register_secret
from ..errors import AuthError, RemoteError
from ._http import RetryPolicy, check_same_origin, make_session, redact, request_with_retries

__all__ = ["OmeroConnection", "secrets_digest"]

logger = logging.getLogger(__name__)


class OmeroConnection:
    """A logged-in, pooled HTTP session to one OMERO.web server (one per process)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.base = config["server"].rstrip("/") + "/"
        self.credentials = config["credentials"]
        self.policy: RetryPolicy = config["policy"]
        self.session = make_session(pool_size=config["pool_size"], verify=config["verify"])
        if self.credentials.get("cookie"):
            self.session.headers["Cookie"] = self.credentials["cookie"]
        self.session_key: str | None = self.credentials.get("session")
        self._lock = threading.Lock()
        if self.credentials.get("username") and not self.session_key:
            self.login()

    def close(self) -> None:
        self.session.close()

    # -- authentication -------------------------------------------------------------
    def login(self) -> None:
        """JSON API login (api-contract.md 5): token, servers, POST login with CSRF.

        Every request goes through the network policy (retries, timeouts, TLS), every URL
        the server advertises must stay on the scheme and host the user named, and a
        refusal (401/403, at any step) is tried once more from the start with a fresh
        CSRF token before it is reported: a proxy or a restarting server can refuse once.
        """
        username, password = self.credentials.get("username"), self.credentials.get("password")
        if not username or not password:
            raise AuthError(
                f"OMERO server {self.base} needs a login: set OMERO_USERNAME and "
                "OMERO_PASSWORD, or OMERO_SESSION (a session key), or OME_COOKIE"
            )
        for attempt in range(2):
            try:
                context = self._login_once(username, password)
                break
            except RemoteError as exc:
                if exc.status not in (400, 401, 403):
                    raise
                if attempt:
                    raise AuthError(
                        f"OMERO login to {self.base} failed (HTTP {exc.status}): "
                        f"{_login_message(exc)} (the username and password come from the "
                        "server URL, else OMERO_USERNAME / OMERO_PASSWORD)"
                    ) from None
                logger.info("the OMERO login was refused once; trying again")
                self.session.cookies.clear()
        self.session_key = context.get("sessionUuid") or self.session_key
        register_secret(self.session_key)
        for cookie in self.session.cookies:
            register_secret(cookie.value)
        logger.info("logged in to OMERO at %s", redact(self.base))

    def _login_once(self, username: str, password: str) -> dict[str, Any]:
        """One pass of the login flow; the server's ``eventContext``."""
        api = self._json("api/", "the OMERO JSON API")
        base = next(
            (v.get("url:base") for v in api.get("data", []) if v.get("version") == "0"),
            None,
        ) or urljoin(self.base, "api/v0/")
        base = check_same_origin(self.base, urljoin(self.base, base), "its JSON API")
        urls = self._json(base, "the OMERO JSON API index")

        def advertised(key: str, default: str, what: str) -> str:
            return check_same_origin(self.base, urljoin(base, urls.get(key) or default), what)

        token_url = advertised("url:token", "token/", "its CSRF token")
        servers_url = advertised("url:servers", "servers/", "its server list")
        login_url = advertised("url:login", "login/", "its login")
        token = self._json(token_url, "a CSRF token").get("data")
        register_secret(token)
        servers = self._json(servers_url, "the server list")
        server_id = (servers.get("data") or [{"id": 1}])[0].get("id", 1)
        response = request_with_retries(
            self.session,
            "POST",
            login_url,
            what=f"the OMERO login at {self.base}",
            policy=self.policy,
            data={"username": username, "password": password, "server": server_id},
            headers={"X-CSRFToken": str(token), "Referer": login_url},
        )
        try:
            return dict(response.json().get("eventContext") or {})  # type: ignore[union-attr]
        except (ValueError, AttributeError):
            raise RemoteError(f"the OMERO login at {self.base} did not answer JSON") from None

    def _json(self, path: str, what: str) -> dict[str, Any]:
        url = urljoin(self.base, path)
        response = request_with_retries(self.session, "GET", url, what=what, policy=self.policy)
        try:
            data = response.json()  # type: ignore[union-attr]
        except ValueError:
            raise RemoteError(f"{what}: {redact(url)} did not answer JSON") from None
        if not isinstance(data, dict):
            raise RemoteError(f"{what}: {redact(url)} did not answer a JSON object")
        return data

    def _is_login_redirect(self, response: requests.Response) -> bool:
        if response.status_code in (301, 302, 303, 307):
            return "login" in response.headers.get("Location", "")
        return response.status_code in (401, 403)

    def _renew(self, failed_key: str | None) -> None:
        """After a refusal: log in again (or resend the session key) once, thread-safely."""
        with self._lock:
            if self.session_key != failed_key:
                return  # another thread has already renewed the session
            self.session.cookies.clear()  # the next request sends bsession again
            if self.credentials.get("username"):
                self.login()
            elif not (self.credentials.get("session") or self.credentials.get("cookie")):
                raise AuthError(f"OMERO at {self.base} needs a login: {self._how()}")

    def _how(self) -> str:
        if self.credentials.get("username"):
            return "the login from OMERO_USERNAME/OMERO_PASSWORD was refused"
        if self.credentials.get("session"):
            return "the session key from OMERO_SESSION is not (or no longer) valid"
        if self.credentials.get("cookie"):
            return "the cookie from OME_COOKIE is not (or no longer) valid"
        return (
            "no credentials given (set OMERO_USERNAME and OMERO_PASSWORD, OMERO_SESSION "
            "(a session key) or OME_COOKIE (a browser cookie))"
        )

    # -- requests -------------------------------------------------------------------
    def get(self, path: str, params: dict[str, Any], *, what: str, validate: Any = None) -> Any:
        """GET ``path`` with retries; re-login once if the session has expired."""
        url = urljoin(self.base, path)
        for attempt in range(2):
            key = self.session_key
            query = dict(params)
            if key and "sessionid" not in self.session.cookies:
                query["bsession"] = key
            try:
                return request_with_retries(
                    self.session,
                    "GET",
                    url,
                    what=what,
                    policy=self.policy,
                    params=query,
                    validate=validate,
                    on_response=self._raise_if_logged_out,
                )
            except _LoggedOut:
                if attempt:
                    break
                self._renew(key)
        raise AuthError(f"OMERO at {self.base} refused {what}: {self._how()}")

    def _raise_if_logged_out(self, response: requests.Response) -> None:
        if self._is_login_redirect(response):
            raise _LoggedOut()


class _LoggedOut(Exception):
    pass


def _login_message(exc: RemoteError) -> str:
    """The server's reason from a refused login's error text (its JSON ``message``)."""
    text = str(exc).split(": ", 2)[-1]
    try:
        return str(json.loads(text).get("message", text))[:200]
    except (ValueError, AttributeError):
        return text[:200]


def secrets_digest(credentials: dict[str, Any]) -> str:
    """A digest that tells credential sets apart without holding them in clear."""
    import hashlib

    text = "\x00".join(f"{k}={credentials.get(k) or ''}" for k in sorted(credentials))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
