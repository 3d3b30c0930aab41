"""Cognito sign-in and token refresh for the Minerva source (``api-contract.md`` 6.4, 7).

Sign-in uses pycognito's SRP flow (``USER_SRP_AUTH``, what Minerva's web client allows),
or ``USER_PASSWORD_AUTH`` where an app client enables it. The IdToken is what API
Gateway's Cognito authorizer wants. It is refreshed with the refresh token before it
expires (``refresh_margin_s``) and once more when the API answers 401. Tokens live in
memory only and never appear in logs or messages.

The boto3 client is unsigned: these calls need no AWS credentials. Its endpoint follows
boto3's rules (``AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER``) unless one is given.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from .._redact import register_secret
from ..errors import AuthError, RemoteError

__all__ = ["CognitoConfig", "CognitoSession", "token_expiry_s"]

logger = logging.getLogger(__name__)
AUTH_FLOWS = ("USER_SRP_AUTH", "USER_PASSWORD_AUTH")


@dataclass(frozen=True, slots=True)
class CognitoConfig:
    """Where and how to sign in: user pool, app client, region, optional secret."""

    pool_id: str
    client_id: str
    region: str
    client_secret: str | None = None
    endpoint_url: str | None = None
    auth_flow: str = "USER_SRP_AUTH"
    refresh_margin_s: float = 300.0

    def __repr__(self) -> str:  # never show the client secret
        return (
            f"CognitoConfig(pool_id={self.pool_id!r}, client_id={self.client_id!r}, "
            f"region={self.region!r})"
        )


def token_expiry_s(token: str) -> float:
    """The ``exp`` claim (seconds since the epoch) of a JWT, read without verifying it.

    The token came straight from Cognito over TLS; we only need to know when to renew it.
    """
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, KeyError, ValueError) as exc:
        raise AuthError(
            f"Cognito returned a token that is not a JWT ({type(exc).__name__})"
        ) from None


class CognitoSession:
    """Signed-in tokens for one user; ``id_token()`` always returns a valid one."""

    def __init__(self, config: CognitoConfig, username: str, password: str) -> None:
        self.config = config
        self._username = username
        self._password = password
        self._lock = threading.Lock()
        self._tokens: dict[str, Any] = {}
        self._client = self._make_client()
        self.sign_ins = 0
        self.refreshes = 0
        self._sign_in()

    def __repr__(self) -> str:
        return f"CognitoSession({self.config!r})"

    def _make_client(self) -> Any:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        return boto3.client(
            "cognito-idp",
            region_name=self.config.region,
            endpoint_url=self.config.endpoint_url,
            config=Config(signature_version=UNSIGNED, retries={"mode": "standard"}),
        )

    def id_token(self) -> str:
        """A valid IdToken, refreshed first if it expires within the margin."""
        with self._lock:
            if time.time() > token_expiry_s(self._tokens["IdToken"]) - self.config.refresh_margin_s:
                self._refresh()
            return self._tokens["IdToken"]

    def invalidate(self, token: str) -> None:
        """The API refused ``token`` (401): refresh, unless another thread already did."""
        with self._lock:
            if self._tokens.get("IdToken") == token:
                self._refresh()

    def _secret_hash(self, username: str) -> dict[str, str]:
        if not self.config.client_secret:
            return {}
        from pycognito.aws_srp import AWSSRP

        return {
            "SECRET_HASH": AWSSRP.get_secret_hash(
                username, self.config.client_id, self.config.client_secret
            )
        }

    def _sign_in(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError
        from pycognito.aws_srp import AWSSRP
        from pycognito.exceptions import ForceChangePasswordException

        who = "the user in MINERVA_USERNAME"
        try:
            if self.config.auth_flow == "USER_PASSWORD_AUTH":
                response = self._client.initiate_auth(
                    AuthFlow="USER_PASSWORD_AUTH",
                    ClientId=self.config.client_id,
                    AuthParameters={
                        "USERNAME": self._username,
                        "PASSWORD": self._password,
                        **self._secret_hash(self._username),
                    },
                )
                if response.get("ChallengeName") == "NEW_PASSWORD_REQUIRED":
                    raise ForceChangePasswordException("new password required")
            else:
                response = AWSSRP(
                    username=self._username,
                    password=self._password,
                    pool_id=self.config.pool_id,
                    client_id=self.config.client_id,
                    client_secret=self.config.client_secret,
                    client=self._client,
                ).authenticate_user()
        except ForceChangePasswordException:
            raise AuthError(
                f"Minerva sign-in: Cognito requires {who} to set a new password first (a "
                "temporary password was issued); sign in once in the Minerva web app to "
                "choose one"
            ) from None
        except ClientError as exc:
            raise _auth_error(exc, who) from None
        except BotoCoreError as exc:
            raise RemoteError(f"cannot reach Cognito in {self.config.region}: {exc}") from None
        self._tokens = dict(response["AuthenticationResult"])
        _register_tokens(self._tokens)
        self.sign_ins += 1
        logger.info("signed in to Cognito user pool %s", self.config.pool_id)

    def _refresh(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        refresh_token = self._tokens.get("RefreshToken")
        if refresh_token:
            try:
                subject = _claim(self._tokens["IdToken"], "cognito:username")
                response = self._client.initiate_auth(
                    AuthFlow="REFRESH_TOKEN_AUTH",
                    ClientId=self.config.client_id,
                    AuthParameters={"REFRESH_TOKEN": refresh_token, **self._secret_hash(subject)},
                )
                self._tokens.update(response["AuthenticationResult"])
                _register_tokens(self._tokens)
                self.refreshes += 1
                logger.info("refreshed the Cognito IdToken")
                return
            except (ClientError, BotoCoreError) as exc:
                logger.info("token refresh failed (%s); signing in again", type(exc).__name__)
        self._sign_in()


def _register_tokens(tokens: dict[str, Any]) -> None:
    for name in ("IdToken", "AccessToken", "RefreshToken"):
        register_secret(tokens.get(name))


def _claim(token: str, name: str) -> str:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims.get(name, ""))


def _auth_error(exc: Any, who: str) -> AuthError:
    code = exc.response.get("Error", {}).get("Code", "")
    message = exc.response.get("Error", {}).get("Message", "")
    if code in ("NotAuthorizedException", "UserNotFoundException"):
        return AuthError(
            f"Minerva sign-in refused for {who}: incorrect username or password "
            f"(MINERVA_USERNAME / MINERVA_PASSWORD); Cognito said: {message}"
        )
    if code == "PasswordResetRequiredException":
        return AuthError(f"Minerva sign-in: Cognito requires {who} to reset the password")
    if code == "ResourceNotFoundException":
        return AuthError(
            f"Minerva sign-in: the user pool or app client does not exist "
            f"(check MINERVA_USER_POOL_ID and MINERVA_CLIENT_ID): {message}"
        )
    return AuthError(f"Minerva sign-in failed ({code}): {message}")
