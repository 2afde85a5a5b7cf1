from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.error_body import ErrorBody
from ...models.refresh_in import RefreshIn
from ...models.token_pair import TokenPair
from typing import cast



def _get_kwargs(
    *,
    body: RefreshIn,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/auth/refresh",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorBody | TokenPair | None:
    if response.status_code == 200:
        response_200 = TokenPair.from_dict(response.json())



        return response_200

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())



        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())



        return response_401

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ErrorBody | TokenPair]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: RefreshIn,

) -> Response[ErrorBody | TokenPair]:
    """ Exchange a refresh token for a new pair (the refresh token rotates)

     A refresh token is good once. Presenting it again within the grace window returns the same new pair;
    after it, the whole session is revoked.

    Args:
        body (RefreshIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | TokenPair]
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
    body: RefreshIn,

) -> ErrorBody | TokenPair | None:
    """ Exchange a refresh token for a new pair (the refresh token rotates)

     A refresh token is good once. Presenting it again within the grace window returns the same new pair;
    after it, the whole session is revoked.

    Args:
        body (RefreshIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | TokenPair
     """


    return sync_detailed(
        client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: RefreshIn,

) -> Response[ErrorBody | TokenPair]:
    """ Exchange a refresh token for a new pair (the refresh token rotates)

     A refresh token is good once. Presenting it again within the grace window returns the same new pair;
    after it, the whole session is revoked.

    Args:
        body (RefreshIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | TokenPair]
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
    body: RefreshIn,

) -> ErrorBody | TokenPair | None:
    """ Exchange a refresh token for a new pair (the refresh token rotates)

     A refresh token is good once. Presenting it again within the grace window returns the same new pair;
    after it, the whole session is revoked.

    Args:
        body (RefreshIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | TokenPair
     """


    return (await asyncio_detailed(
        client=client,
body=body,

    )).parsed
