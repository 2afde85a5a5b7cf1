from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.endpoint_create import EndpointCreate
from ...models.endpoint_with_secret import EndpointWithSecret
from ...models.error_body import ErrorBody
from typing import cast



def _get_kwargs(
    *,
    body: EndpointCreate,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/webhooks",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> EndpointWithSecret | ErrorBody | None:
    if response.status_code == 201:
        response_201 = EndpointWithSecret.from_dict(response.json())



        return response_201

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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[EndpointWithSecret | ErrorBody]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: EndpointCreate,

) -> Response[EndpointWithSecret | ErrorBody]:
    """ Register a webhook endpoint

     Your endpoint receives the chosen events of your projects, signed per Standard Webhooks. The
    `secret` is shown only in this response (and on rotation). The URL must not resolve to a private,
    loopback, link-local or metadata address.

    Args:
        body (EndpointCreate):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[EndpointWithSecret | ErrorBody]
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
    client: AuthenticatedClient,
    body: EndpointCreate,

) -> EndpointWithSecret | ErrorBody | None:
    """ Register a webhook endpoint

     Your endpoint receives the chosen events of your projects, signed per Standard Webhooks. The
    `secret` is shown only in this response (and on rotation). The URL must not resolve to a private,
    loopback, link-local or metadata address.

    Args:
        body (EndpointCreate):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        EndpointWithSecret | ErrorBody
     """


    return sync_detailed(
        client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: EndpointCreate,

) -> Response[EndpointWithSecret | ErrorBody]:
    """ Register a webhook endpoint

     Your endpoint receives the chosen events of your projects, signed per Standard Webhooks. The
    `secret` is shown only in this response (and on rotation). The URL must not resolve to a private,
    loopback, link-local or metadata address.

    Args:
        body (EndpointCreate):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[EndpointWithSecret | ErrorBody]
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
    client: AuthenticatedClient,
    body: EndpointCreate,

) -> EndpointWithSecret | ErrorBody | None:
    """ Register a webhook endpoint

     Your endpoint receives the chosen events of your projects, signed per Standard Webhooks. The
    `secret` is shown only in this response (and on rotation). The URL must not resolve to a private,
    loopback, link-local or metadata address.

    Args:
        body (EndpointCreate):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        EndpointWithSecret | ErrorBody
     """


    return (await asyncio_detailed(
        client=client,
body=body,

    )).parsed
