from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.error_body import ErrorBody
from ...models.user_out import UserOut
from ...models.verify_email_in import VerifyEmailIn
from typing import cast



def _get_kwargs(
    *,
    body: VerifyEmailIn,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/auth/email/verify",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorBody | UserOut | None:
    if response.status_code == 200:
        response_200 = UserOut.from_dict(response.json())



        return response_200

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())



        return response_400

    if response.status_code == 409:
        response_409 = ErrorBody.from_dict(response.json())



        return response_409

    if response.status_code == 429:
        response_429 = ErrorBody.from_dict(response.json())



        return response_429

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ErrorBody | UserOut]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: VerifyEmailIn,

) -> Response[ErrorBody | UserOut]:
    """ Apply the token of a verification or address-change link

     A verification link (sent at registration and by `/email/resend`, good for 72 hours) marks the
    address verified; an address-change link (from `/email/change`) makes the new address the account's,
    verified. Each link works once. A used, expired or unknown token: 400 `INVALID_TOKEN`; a new address
    that another account took meanwhile: 409 `EMAIL_TAKEN`. No sign-in needed: the token is the proof.

    Args:
        body (VerifyEmailIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | UserOut]
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
    body: VerifyEmailIn,

) -> ErrorBody | UserOut | None:
    """ Apply the token of a verification or address-change link

     A verification link (sent at registration and by `/email/resend`, good for 72 hours) marks the
    address verified; an address-change link (from `/email/change`) makes the new address the account's,
    verified. Each link works once. A used, expired or unknown token: 400 `INVALID_TOKEN`; a new address
    that another account took meanwhile: 409 `EMAIL_TAKEN`. No sign-in needed: the token is the proof.

    Args:
        body (VerifyEmailIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | UserOut
     """


    return sync_detailed(
        client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: VerifyEmailIn,

) -> Response[ErrorBody | UserOut]:
    """ Apply the token of a verification or address-change link

     A verification link (sent at registration and by `/email/resend`, good for 72 hours) marks the
    address verified; an address-change link (from `/email/change`) makes the new address the account's,
    verified. Each link works once. A used, expired or unknown token: 400 `INVALID_TOKEN`; a new address
    that another account took meanwhile: 409 `EMAIL_TAKEN`. No sign-in needed: the token is the proof.

    Args:
        body (VerifyEmailIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | UserOut]
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
    body: VerifyEmailIn,

) -> ErrorBody | UserOut | None:
    """ Apply the token of a verification or address-change link

     A verification link (sent at registration and by `/email/resend`, good for 72 hours) marks the
    address verified; an address-change link (from `/email/change`) makes the new address the account's,
    verified. Each link works once. A used, expired or unknown token: 400 `INVALID_TOKEN`; a new address
    that another account took meanwhile: 409 `EMAIL_TAKEN`. No sign-in needed: the token is the proof.

    Args:
        body (VerifyEmailIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | UserOut
     """


    return (await asyncio_detailed(
        client=client,
body=body,

    )).parsed
