from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.error_body import ErrorBody
from ...models.list_projects_sort import ListProjectsSort
from ...models.list_projects_status_type_0 import ListProjectsStatusType0
from ...models.project_page import ProjectPage
from ...types import UNSET, Unset
from typing import cast
from uuid import UUID
import datetime



def _get_kwargs(
    *,
    page: int | None | Unset = UNSET,
    limit: int | Unset = 20,
    cursor: None | str | Unset = UNSET,
    status: ListProjectsStatusType0 | None | Unset = UNSET,
    q: None | str | Unset = UNSET,
    created_after: datetime.datetime | None | Unset = UNSET,
    created_before: datetime.datetime | None | Unset = UNSET,
    sort: ListProjectsSort | Unset = ListProjectsSort.VALUE_1,
    user_id: None | Unset | UUID = UNSET,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    json_page: int | None | Unset
    if isinstance(page, Unset):
        json_page = UNSET
    else:
        json_page = page
    params["page"] = json_page

    params["limit"] = limit

    json_cursor: None | str | Unset
    if isinstance(cursor, Unset):
        json_cursor = UNSET
    else:
        json_cursor = cursor
    params["cursor"] = json_cursor

    json_status: None | str | Unset
    if isinstance(status, Unset):
        json_status = UNSET
    elif isinstance(status, ListProjectsStatusType0):
        json_status = status.value
    else:
        json_status = status
    params["status"] = json_status

    json_q: None | str | Unset
    if isinstance(q, Unset):
        json_q = UNSET
    else:
        json_q = q
    params["q"] = json_q

    json_created_after: None | str | Unset
    if isinstance(created_after, Unset):
        json_created_after = UNSET
    elif isinstance(created_after, datetime.datetime):
        json_created_after = created_after.isoformat()
    else:
        json_created_after = created_after
    params["createdAfter"] = json_created_after

    json_created_before: None | str | Unset
    if isinstance(created_before, Unset):
        json_created_before = UNSET
    elif isinstance(created_before, datetime.datetime):
        json_created_before = created_before.isoformat()
    else:
        json_created_before = created_before
    params["createdBefore"] = json_created_before

    json_sort: str | Unset = UNSET
    if not isinstance(sort, Unset):
        json_sort = sort.value

    params["sort"] = json_sort

    json_user_id: None | str | Unset
    if isinstance(user_id, Unset):
        json_user_id = UNSET
    elif isinstance(user_id, UUID):
        json_user_id = str(user_id)
    else:
        json_user_id = user_id
    params["userId"] = json_user_id


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/projects",
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorBody | ProjectPage | None:
    if response.status_code == 200:
        response_200 = ProjectPage.from_dict(response.json())



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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ErrorBody | ProjectPage]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    page: int | None | Unset = UNSET,
    limit: int | Unset = 20,
    cursor: None | str | Unset = UNSET,
    status: ListProjectsStatusType0 | None | Unset = UNSET,
    q: None | str | Unset = UNSET,
    created_after: datetime.datetime | None | Unset = UNSET,
    created_before: datetime.datetime | None | Unset = UNSET,
    sort: ListProjectsSort | Unset = ListProjectsSort.VALUE_1,
    user_id: None | Unset | UUID = UNSET,

) -> Response[ErrorBody | ProjectPage]:
    """ List the projects you can see

     Your projects (an admin: everyone's, or one user's with `userId`), newest first by default, ties
    broken by id. Offset pages with `page`, or keyset pages with the `nextCursor` of the previous
    response as `cursor` (cursor pages are not counted: `page`, `total` and `totalPages` are null). `q`
    finds a case-insensitive substring of name or description; `createdAfter` is inclusive,
    `createdBefore` exclusive.

    Args:
        page (int | None | Unset): Default 1
        limit (int | Unset):  Default: 20.
        cursor (None | str | Unset):
        status (ListProjectsStatusType0 | None | Unset):
        q (None | str | Unset):
        created_after (datetime.datetime | None | Unset):
        created_before (datetime.datetime | None | Unset):
        sort (ListProjectsSort | Unset):  Default: ListProjectsSort.VALUE_1.
        user_id (None | Unset | UUID): Admins: one owner's projects

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | ProjectPage]
     """


    kwargs = _get_kwargs(
        page=page,
limit=limit,
cursor=cursor,
status=status,
q=q,
created_after=created_after,
created_before=created_before,
sort=sort,
user_id=user_id,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    *,
    client: AuthenticatedClient,
    page: int | None | Unset = UNSET,
    limit: int | Unset = 20,
    cursor: None | str | Unset = UNSET,
    status: ListProjectsStatusType0 | None | Unset = UNSET,
    q: None | str | Unset = UNSET,
    created_after: datetime.datetime | None | Unset = UNSET,
    created_before: datetime.datetime | None | Unset = UNSET,
    sort: ListProjectsSort | Unset = ListProjectsSort.VALUE_1,
    user_id: None | Unset | UUID = UNSET,

) -> ErrorBody | ProjectPage | None:
    """ List the projects you can see

     Your projects (an admin: everyone's, or one user's with `userId`), newest first by default, ties
    broken by id. Offset pages with `page`, or keyset pages with the `nextCursor` of the previous
    response as `cursor` (cursor pages are not counted: `page`, `total` and `totalPages` are null). `q`
    finds a case-insensitive substring of name or description; `createdAfter` is inclusive,
    `createdBefore` exclusive.

    Args:
        page (int | None | Unset): Default 1
        limit (int | Unset):  Default: 20.
        cursor (None | str | Unset):
        status (ListProjectsStatusType0 | None | Unset):
        q (None | str | Unset):
        created_after (datetime.datetime | None | Unset):
        created_before (datetime.datetime | None | Unset):
        sort (ListProjectsSort | Unset):  Default: ListProjectsSort.VALUE_1.
        user_id (None | Unset | UUID): Admins: one owner's projects

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | ProjectPage
     """


    return sync_detailed(
        client=client,
page=page,
limit=limit,
cursor=cursor,
status=status,
q=q,
created_after=created_after,
created_before=created_before,
sort=sort,
user_id=user_id,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    page: int | None | Unset = UNSET,
    limit: int | Unset = 20,
    cursor: None | str | Unset = UNSET,
    status: ListProjectsStatusType0 | None | Unset = UNSET,
    q: None | str | Unset = UNSET,
    created_after: datetime.datetime | None | Unset = UNSET,
    created_before: datetime.datetime | None | Unset = UNSET,
    sort: ListProjectsSort | Unset = ListProjectsSort.VALUE_1,
    user_id: None | Unset | UUID = UNSET,

) -> Response[ErrorBody | ProjectPage]:
    """ List the projects you can see

     Your projects (an admin: everyone's, or one user's with `userId`), newest first by default, ties
    broken by id. Offset pages with `page`, or keyset pages with the `nextCursor` of the previous
    response as `cursor` (cursor pages are not counted: `page`, `total` and `totalPages` are null). `q`
    finds a case-insensitive substring of name or description; `createdAfter` is inclusive,
    `createdBefore` exclusive.

    Args:
        page (int | None | Unset): Default 1
        limit (int | Unset):  Default: 20.
        cursor (None | str | Unset):
        status (ListProjectsStatusType0 | None | Unset):
        q (None | str | Unset):
        created_after (datetime.datetime | None | Unset):
        created_before (datetime.datetime | None | Unset):
        sort (ListProjectsSort | Unset):  Default: ListProjectsSort.VALUE_1.
        user_id (None | Unset | UUID): Admins: one owner's projects

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | ProjectPage]
     """


    kwargs = _get_kwargs(
        page=page,
limit=limit,
cursor=cursor,
status=status,
q=q,
created_after=created_after,
created_before=created_before,
sort=sort,
user_id=user_id,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    *,
    client: AuthenticatedClient,
    page: int | None | Unset = UNSET,
    limit: int | Unset = 20,
    cursor: None | str | Unset = UNSET,
    status: ListProjectsStatusType0 | None | Unset = UNSET,
    q: None | str | Unset = UNSET,
    created_after: datetime.datetime | None | Unset = UNSET,
    created_before: datetime.datetime | None | Unset = UNSET,
    sort: ListProjectsSort | Unset = ListProjectsSort.VALUE_1,
    user_id: None | Unset | UUID = UNSET,

) -> ErrorBody | ProjectPage | None:
    """ List the projects you can see

     Your projects (an admin: everyone's, or one user's with `userId`), newest first by default, ties
    broken by id. Offset pages with `page`, or keyset pages with the `nextCursor` of the previous
    response as `cursor` (cursor pages are not counted: `page`, `total` and `totalPages` are null). `q`
    finds a case-insensitive substring of name or description; `createdAfter` is inclusive,
    `createdBefore` exclusive.

    Args:
        page (int | None | Unset): Default 1
        limit (int | Unset):  Default: 20.
        cursor (None | str | Unset):
        status (ListProjectsStatusType0 | None | Unset):
        q (None | str | Unset):
        created_after (datetime.datetime | None | Unset):
        created_before (datetime.datetime | None | Unset):
        sort (ListProjectsSort | Unset):  Default: ListProjectsSort.VALUE_1.
        user_id (None | Unset | UUID): Admins: one owner's projects

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | ProjectPage
     """


    return (await asyncio_detailed(
        client=client,
page=page,
limit=limit,
cursor=cursor,
status=status,
q=q,
created_after=created_after,
created_before=created_before,
sort=sort,
user_id=user_id,

    )).parsed
