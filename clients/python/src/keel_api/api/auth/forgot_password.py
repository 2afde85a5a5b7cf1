from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.error_body import ErrorBody
from ...models.forgot_password_in import ForgotPasswordIn
from typing import cast



def _get_kwargs(
    *,
    body: ForgotPasswordIn,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/auth/password/forgot",
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
    client: AuthenticatedClient | Client,
    body: ForgotPasswordIn,

) -> Response[Any | ErrorBody]:
    """ Mail a password-reset link

     202 for every address, with an account or without (no mail is sent then), so the answer does not
    tell who has an account. The mail links to `{KEEL_PUBLIC_URL}/reset-password?token=…`, good for 30
    minutes and once; a newer request retires the earlier link. Limited per address
    (`KEEL_MAIL_RATE_LIMIT_PER_ADDRESS`) and per IP: 429 with Retry-After.

    Args:
        body (ForgotPasswordIn):

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
    client: AuthenticatedClient | Client,
    body: ForgotPasswordIn,

) -> Any | ErrorBody | None:
    """ Mail a password-reset link

     202 for every address, with an account or without (no mail is sent then), so the answer does not
    tell who has an account. The mail links to `{KEEL_PUBLIC_URL}/reset-password?token=…`, good for 30
    minutes and once; a newer request retires the earlier link. Limited per address
    (`KEEL_MAIL_RATE_LIMIT_PER_ADDRESS`) and per IP: 429 with Retry-After.

    Args:
        body (ForgotPasswordIn):

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
    client: AuthenticatedClient | Client,
    body: ForgotPasswordIn,

) -> Response[Any | ErrorBody]:
    """ Mail a password-reset link

     202 for every address, with an account or without (no mail is sent then), so the answer does not
    tell who has an account. The mail links to `{KEEL_PUBLIC_URL}/reset-password?token=…`, good for 30
    minutes and once; a newer request retires the earlier link. Limited per address
    (`KEEL_MAIL_RATE_LIMIT_PER_ADDRESS`) and per IP: 429 with Retry-After.

    Args:
        body (ForgotPasswordIn):

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
    client: AuthenticatedClient | Client,
    body: ForgotPasswordIn,

) -> Any | ErrorBody | None:
    """ Mail a password-reset link

     202 for every address, with an account or without (no mail is sent then), so the answer does not
    tell who has an account. The mail links to `{KEEL_PUBLIC_URL}/reset-password?token=…`, good for 30
    minutes and once; a newer request retires the earlier link. Limited per address
    (`KEEL_MAIL_RATE_LIMIT_PER_ADDRESS`) and per IP: 429 with Retry-After.

    Args:
        body (ForgotPasswordIn):

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
