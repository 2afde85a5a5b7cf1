from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.error_body import ErrorBody
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    provider: str,
    *,
    state: None | str | Unset = UNSET,
    code: None | str | Unset = UNSET,
    error: None | str | Unset = UNSET,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    json_state: None | str | Unset
    if isinstance(state, Unset):
        json_state = UNSET
    else:
        json_state = state
    params["state"] = json_state

    json_code: None | str | Unset
    if isinstance(code, Unset):
        json_code = UNSET
    else:
        json_code = code
    params["code"] = json_code

    json_error: None | str | Unset
    if isinstance(error, Unset):
        json_error = UNSET
    else:
        json_error = error
    params["error"] = json_error


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/auth/oidc/{provider}/callback".format(provider=quote(str(provider), safe=""),),
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
    state: None | str | Unset = UNSET,
    code: None | str | Unset = UNSET,
    error: None | str | Unset = UNSET,

) -> Response[Any | ErrorBody]:
    """ Where the OpenID provider returns the browser (register this URL with it)

     Verifies the state, exchanges the code, verifies the ID token (signature against the provider's
    JWKS, `iss`, `aud`, `exp`, `nonce`), then finds the user linked to the provider's subject, or links
    the account with the same e-mail only when the provider says `email_verified`, or creates one.
    Redirects to redirectUri with `code`, or with `error` (INVALID_STATE, INVALID_ID_TOKEN,
    OIDC_EMAIL_UNVERIFIED, OIDC_CODE_REJECTED, OIDC_PROVIDER_ERROR, OIDC_EMAIL_MISSING,
    ACCOUNT_DISABLED, OIDC_PROVIDER_UNAVAILABLE). A state that names no sign-in under way is a 400
    INVALID_STATE.

    Args:
        provider (str): A provider named in KEEL_OIDC_PROVIDERS
        state (None | str | Unset):
        code (None | str | Unset):
        error (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorBody]
     """


    kwargs = _get_kwargs(
        provider=provider,
state=state,
code=code,
error=error,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    provider: str,
    *,
    client: AuthenticatedClient | Client,
    state: None | str | Unset = UNSET,
    code: None | str | Unset = UNSET,
    error: None | str | Unset = UNSET,

) -> Any | ErrorBody | None:
    """ Where the OpenID provider returns the browser (register this URL with it)

     Verifies the state, exchanges the code, verifies the ID token (signature against the provider's
    JWKS, `iss`, `aud`, `exp`, `nonce`), then finds the user linked to the provider's subject, or links
    the account with the same e-mail only when the provider says `email_verified`, or creates one.
    Redirects to redirectUri with `code`, or with `error` (INVALID_STATE, INVALID_ID_TOKEN,
    OIDC_EMAIL_UNVERIFIED, OIDC_CODE_REJECTED, OIDC_PROVIDER_ERROR, OIDC_EMAIL_MISSING,
    ACCOUNT_DISABLED, OIDC_PROVIDER_UNAVAILABLE). A state that names no sign-in under way is a 400
    INVALID_STATE.

    Args:
        provider (str): A provider named in KEEL_OIDC_PROVIDERS
        state (None | str | Unset):
        code (None | str | Unset):
        error (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorBody
     """


    return sync_detailed(
        provider=provider,
client=client,
state=state,
code=code,
error=error,

    ).parsed

async def asyncio_detailed(
    provider: str,
    *,
    client: AuthenticatedClient | Client,
    state: None | str | Unset = UNSET,
    code: None | str | Unset = UNSET,
    error: None | str | Unset = UNSET,

) -> Response[Any | ErrorBody]:
    """ Where the OpenID provider returns the browser (register this URL with it)

     Verifies the state, exchanges the code, verifies the ID token (signature against the provider's
    JWKS, `iss`, `aud`, `exp`, `nonce`), then finds the user linked to the provider's subject, or links
    the account with the same e-mail only when the provider says `email_verified`, or creates one.
    Redirects to redirectUri with `code`, or with `error` (INVALID_STATE, INVALID_ID_TOKEN,
    OIDC_EMAIL_UNVERIFIED, OIDC_CODE_REJECTED, OIDC_PROVIDER_ERROR, OIDC_EMAIL_MISSING,
    ACCOUNT_DISABLED, OIDC_PROVIDER_UNAVAILABLE). A state that names no sign-in under way is a 400
    INVALID_STATE.

    Args:
        provider (str): A provider named in KEEL_OIDC_PROVIDERS
        state (None | str | Unset):
        code (None | str | Unset):
        error (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorBody]
     """


    kwargs = _get_kwargs(
        provider=provider,
state=state,
code=code,
error=error,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    provider: str,
    *,
    client: AuthenticatedClient | Client,
    state: None | str | Unset = UNSET,
    code: None | str | Unset = UNSET,
    error: None | str | Unset = UNSET,

) -> Any | ErrorBody | None:
    """ Where the OpenID provider returns the browser (register this URL with it)

     Verifies the state, exchanges the code, verifies the ID token (signature against the provider's
    JWKS, `iss`, `aud`, `exp`, `nonce`), then finds the user linked to the provider's subject, or links
    the account with the same e-mail only when the provider says `email_verified`, or creates one.
    Redirects to redirectUri with `code`, or with `error` (INVALID_STATE, INVALID_ID_TOKEN,
    OIDC_EMAIL_UNVERIFIED, OIDC_CODE_REJECTED, OIDC_PROVIDER_ERROR, OIDC_EMAIL_MISSING,
    ACCOUNT_DISABLED, OIDC_PROVIDER_UNAVAILABLE). A state that names no sign-in under way is a 400
    INVALID_STATE.

    Args:
        provider (str): A provider named in KEEL_OIDC_PROVIDERS
        state (None | str | Unset):
        code (None | str | Unset):
        error (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorBody
     """


    return (await asyncio_detailed(
        provider=provider,
client=client,
state=state,
code=code,
error=error,

    )).parsed
