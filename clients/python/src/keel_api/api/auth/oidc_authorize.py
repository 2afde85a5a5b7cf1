from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.error_body import ErrorBody
from typing import cast



def _get_kwargs(
    provider: str,
    *,
    redirect_uri: str,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    params["redirectUri"] = redirect_uri


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/auth/oidc/{provider}/authorize".format(provider=quote(str(provider), safe=""),),
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Any | ErrorBody | None:
    if response.status_code == 302:
        response_302 = cast(Any, None)
        return response_302

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())



        return response_400

    if response.status_code == 404:
        response_404 = ErrorBody.from_dict(response.json())



        return response_404

    if response.status_code == 503:
        response_503 = ErrorBody.from_dict(response.json())



        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[Any | ErrorBody]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    provider: str,
    *,
    client: AuthenticatedClient | Client,
    redirect_uri: str,

) -> Response[Any | ErrorBody]:
    """ Start signing in with an OpenID provider (browser navigation)

     Redirects to the provider with PKCE (S256), `state` and `nonce`; the provider sends the browser back
    to the callback, which ends at `redirectUri` with a one-time `code` for POST
    /api/v1/auth/oidc/exchange, or with `error` and `error_description`. `redirectUri` must be on
    KEEL_OIDC_REDIRECT_ALLOWLIST (else 400). Sets an HttpOnly cookie that binds the sign-in to this
    browser.

    Args:
        provider (str): A provider named in KEEL_OIDC_PROVIDERS
        redirect_uri (str): Where the browser goes afterwards (on the allow-list)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorBody]
     """


    kwargs = _get_kwargs(
        provider=provider,
redirect_uri=redirect_uri,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    provider: str,
    *,
    client: AuthenticatedClient | Client,
    redirect_uri: str,

) -> Any | ErrorBody | None:
    """ Start signing in with an OpenID provider (browser navigation)

     Redirects to the provider with PKCE (S256), `state` and `nonce`; the provider sends the browser back
    to the callback, which ends at `redirectUri` with a one-time `code` for POST
    /api/v1/auth/oidc/exchange, or with `error` and `error_description`. `redirectUri` must be on
    KEEL_OIDC_REDIRECT_ALLOWLIST (else 400). Sets an HttpOnly cookie that binds the sign-in to this
    browser.

    Args:
        provider (str): A provider named in KEEL_OIDC_PROVIDERS
        redirect_uri (str): Where the browser goes afterwards (on the allow-list)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorBody
     """


    return sync_detailed(
        provider=provider,
client=client,
redirect_uri=redirect_uri,

    ).parsed

async def asyncio_detailed(
    provider: str,
    *,
    client: AuthenticatedClient | Client,
    redirect_uri: str,

) -> Response[Any | ErrorBody]:
    """ Start signing in with an OpenID provider (browser navigation)

     Redirects to the provider with PKCE (S256), `state` and `nonce`; the provider sends the browser back
    to the callback, which ends at `redirectUri` with a one-time `code` for POST
    /api/v1/auth/oidc/exchange, or with `error` and `error_description`. `redirectUri` must be on
    KEEL_OIDC_REDIRECT_ALLOWLIST (else 400). Sets an HttpOnly cookie that binds the sign-in to this
    browser.

    Args:
        provider (str): A provider named in KEEL_OIDC_PROVIDERS
        redirect_uri (str): Where the browser goes afterwards (on the allow-list)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorBody]
     """


    kwargs = _get_kwargs(
        provider=provider,
redirect_uri=redirect_uri,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    provider: str,
    *,
    client: AuthenticatedClient | Client,
    redirect_uri: str,

) -> Any | ErrorBody | None:
    """ Start signing in with an OpenID provider (browser navigation)

     Redirects to the provider with PKCE (S256), `state` and `nonce`; the provider sends the browser back
    to the callback, which ends at `redirectUri` with a one-time `code` for POST
    /api/v1/auth/oidc/exchange, or with `error` and `error_description`. `redirectUri` must be on
    KEEL_OIDC_REDIRECT_ALLOWLIST (else 400). Sets an HttpOnly cookie that binds the sign-in to this
    browser.

    Args:
        provider (str): A provider named in KEEL_OIDC_PROVIDERS
        redirect_uri (str): Where the browser goes afterwards (on the allow-list)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorBody
     """


    return (await asyncio_detailed(
        provider=provider,
client=client,
redirect_uri=redirect_uri,

    )).parsed
