from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.error_body import ErrorBody
from ...models.project_create import ProjectCreate
from ...models.project_out import ProjectOut
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    *,
    body: ProjectCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key



    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/projects",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorBody | ProjectOut | None:
    if response.status_code == 201:
        response_201 = ProjectOut.from_dict(response.json())



        return response_201

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())



        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())



        return response_401

    if response.status_code == 403:
        response_403 = ErrorBody.from_dict(response.json())



        return response_403

    if response.status_code == 422:
        response_422 = ErrorBody.from_dict(response.json())



        return response_422

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ErrorBody | ProjectOut]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: ProjectCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> Response[ErrorBody | ProjectOut]:
    """ Create a project

     With an `Idempotency-Key` (yours alone, kept 24 h), repeating the request returns the first response
    again with `Idempotent-Replayed: true` and creates nothing; the same key with another body is a 422.

    Args:
        idempotency_key (None | str | Unset): Client-chosen key (printable ASCII) making the
            create safe to retry
        body (ProjectCreate):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | ProjectOut]
     """


    kwargs = _get_kwargs(
        body=body,
idempotency_key=idempotency_key,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    *,
    client: AuthenticatedClient,
    body: ProjectCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> ErrorBody | ProjectOut | None:
    """ Create a project

     With an `Idempotency-Key` (yours alone, kept 24 h), repeating the request returns the first response
    again with `Idempotent-Replayed: true` and creates nothing; the same key with another body is a 422.

    Args:
        idempotency_key (None | str | Unset): Client-chosen key (printable ASCII) making the
            create safe to retry
        body (ProjectCreate):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | ProjectOut
     """


    return sync_detailed(
        client=client,
body=body,
idempotency_key=idempotency_key,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: ProjectCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> Response[ErrorBody | ProjectOut]:
    """ Create a project

     With an `Idempotency-Key` (yours alone, kept 24 h), repeating the request returns the first response
    again with `Idempotent-Replayed: true` and creates nothing; the same key with another body is a 422.

    Args:
        idempotency_key (None | str | Unset): Client-chosen key (printable ASCII) making the
            create safe to retry
        body (ProjectCreate):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | ProjectOut]
     """


    kwargs = _get_kwargs(
        body=body,
idempotency_key=idempotency_key,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    *,
    client: AuthenticatedClient,
    body: ProjectCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> ErrorBody | ProjectOut | None:
    """ Create a project

     With an `Idempotency-Key` (yours alone, kept 24 h), repeating the request returns the first response
    again with `Idempotent-Replayed: true` and creates nothing; the same key with another body is a 422.

    Args:
        idempotency_key (None | str | Unset): Client-chosen key (printable ASCII) making the
            create safe to retry
        body (ProjectCreate):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | ProjectOut
     """


    return (await asyncio_detailed(
        client=client,
body=body,
idempotency_key=idempotency_key,

    )).parsed
