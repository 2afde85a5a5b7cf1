from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.auth_out import AuthOut
from ...models.error_body import ErrorBody
from ...models.oidc_exchange_in import OidcExchangeIn
from typing import cast



def _get_kwargs(
    *,
    body: OidcExchangeIn,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/auth/oidc/exchange",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> AuthOut | ErrorBody | None:
    if response.status_code == 200:
        response_200 = AuthOut.from_dict(response.json())



        return response_200

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())



        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())



        return response_401

    if response.status_code == 429:
        response_429 = ErrorBody.from_dict(response.json())



        return response_429

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[AuthOut | ErrorBody]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: OidcExchangeIn,

) -> Response[AuthOut | ErrorBody]:
    """ Trade the one-time code from the OpenID callback for tokens

     The same response as POST /api/v1/auth/login. The code is good once and for
    KEEL_OIDC_CODE_TTL_SECONDS (60 s by default); with MFA on, `totp` is needed as at login (a missing
    or wrong one leaves the code usable until it expires).

    Args:
        body (OidcExchangeIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AuthOut | ErrorBody]
     """


    kwargs = _get_kwargs(
        body=body,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    *,
    client: AuthenticatedClient | Client,
    body: OidcExchangeIn,

) -> AuthOut | ErrorBody | None:
    """ Trade the one-time code from the OpenID callback for tokens

     The same response as POST /api/v1/auth/login. The code is good once and for
    KEEL_OIDC_CODE_TTL_SECONDS (60 s by default); with MFA on, `totp` is needed as at login (a missing
    or wrong one leaves the code usable until it expires).

    Args:
        body (OidcExchangeIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AuthOut | ErrorBody
     """


    return sync_detailed(
        client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: OidcExchangeIn,

) -> Response[AuthOut | ErrorBody]:
    """ Trade the one-time code from the OpenID callback for tokens

     The same response as POST /api/v1/auth/login. The code is good once and for
    KEEL_OIDC_CODE_TTL_SECONDS (60 s by default); with MFA on, `totp` is needed as at login (a missing
    or wrong one leaves the code usable until it expires).

    Args:
        body (OidcExchangeIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AuthOut | ErrorBody]
     """


    kwargs = _get_kwargs(
        body=body,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    body: OidcExchangeIn,

) -> AuthOut | ErrorBody | None:
    """ Trade the one-time code from the OpenID callback for tokens

     The same response as POST /api/v1/auth/login. The code is good once and for
    KEEL_OIDC_CODE_TTL_SECONDS (60 s by default); with MFA on, `totp` is needed as at login (a missing
    or wrong one leaves the code usable until it expires).

    Args:
        body (OidcExchangeIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AuthOut | ErrorBody
     """


    return (await asyncio_detailed(
        client=client,
body=body,

    )).parsed
