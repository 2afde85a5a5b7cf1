from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.email_change_in import EmailChangeIn
from ...models.error_body import ErrorBody
from typing import cast



def _get_kwargs(
    *,
    body: EmailChangeIn,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/auth/email/change",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Any | ErrorBody | None:
    if response.status_code == 202:
        response_202 = cast(Any, None)
        return response_202

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())



        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())



        return response_401

    if response.status_code == 403:
        response_403 = ErrorBody.from_dict(response.json())



        return response_403

    if response.status_code == 429:
        response_429 = ErrorBody.from_dict(response.json())



        return response_429

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
    *,
    client: AuthenticatedClient,
    body: EmailChangeIn,

) -> Response[Any | ErrorBody]:
    """ Change the account's address (needs the password)

     The new address gets a confirmation link (`/verify-email?token=…`, 72 hours; `POST /email/verify`
    applies it), the current address a notice. Nothing changes until the link is followed. An address
    another account holds gets no link but the answer is the same 202, so this cannot be used to find
    accounts. A wrong password: 403 `INVALID_PASSWORD` (counted like a failed sign-in).

    Args:
        body (EmailChangeIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorBody]
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
    body: EmailChangeIn,

) -> Any | ErrorBody | None:
    """ Change the account's address (needs the password)

     The new address gets a confirmation link (`/verify-email?token=…`, 72 hours; `POST /email/verify`
    applies it), the current address a notice. Nothing changes until the link is followed. An address
    another account holds gets no link but the answer is the same 202, so this cannot be used to find
    accounts. A wrong password: 403 `INVALID_PASSWORD` (counted like a failed sign-in).

    Args:
        body (EmailChangeIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorBody
     """


    return sync_detailed(
        client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: EmailChangeIn,

) -> Response[Any | ErrorBody]:
    """ Change the account's address (needs the password)

     The new address gets a confirmation link (`/verify-email?token=…`, 72 hours; `POST /email/verify`
    applies it), the current address a notice. Nothing changes until the link is followed. An address
    another account holds gets no link but the answer is the same 202, so this cannot be used to find
    accounts. A wrong password: 403 `INVALID_PASSWORD` (counted like a failed sign-in).

    Args:
        body (EmailChangeIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorBody]
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
    body: EmailChangeIn,

) -> Any | ErrorBody | None:
    """ Change the account's address (needs the password)

     The new address gets a confirmation link (`/verify-email?token=…`, 72 hours; `POST /email/verify`
    applies it), the current address a notice. Nothing changes until the link is followed. An address
    another account holds gets no link but the answer is the same 202, so this cannot be used to find
    accounts. A wrong password: 403 `INVALID_PASSWORD` (counted like a failed sign-in).

    Args:
        body (EmailChangeIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorBody
     """


    return (await asyncio_detailed(
        client=client,
body=body,

    )).parsed
