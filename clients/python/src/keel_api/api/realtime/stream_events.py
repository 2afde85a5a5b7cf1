from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.error_body import ErrorBody
from ...models.stream_events_response_200 import StreamEventsResponse200
from ...types import UNSET, Unset
from typing import cast
from uuid import UUID



def _get_kwargs(
    *,
    ticket: None | str | Unset = UNSET,
    project_id: list[UUID] | None | Unset = UNSET,
    last_event_id_query: None | str | Unset = UNSET,
    last_event_id_header: None | str | Unset = UNSET,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(last_event_id_header, Unset):
        headers["Last-Event-ID"] = last_event_id_header



    

    params: dict[str, Any] = {}

    json_ticket: None | str | Unset
    if isinstance(ticket, Unset):
        json_ticket = UNSET
    else:
        json_ticket = ticket
    params["ticket"] = json_ticket

    json_project_id: list[str] | None | Unset
    if isinstance(project_id, Unset):
        json_project_id = UNSET
    elif isinstance(project_id, list):
        json_project_id = []
        for project_id_type_0_item_data in project_id:
            project_id_type_0_item = str(project_id_type_0_item_data)
            json_project_id.append(project_id_type_0_item)


    else:
        json_project_id = project_id
    params["projectId"] = json_project_id

    json_last_event_id_query: None | str | Unset
    if isinstance(last_event_id_query, Unset):
        json_last_event_id_query = UNSET
    else:
        json_last_event_id_query = last_event_id_query
    params["lastEventId"] = json_last_event_id_query


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/events",
        "params": params,
    }


    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorBody | StreamEventsResponse200 | None:
    if response.status_code == 200:
        response_200 = StreamEventsResponse200.from_dict(response.text)



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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ErrorBody | StreamEventsResponse200]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    ticket: None | str | Unset = UNSET,
    project_id: list[UUID] | None | Unset = UNSET,
    last_event_id_query: None | str | Unset = UNSET,
    last_event_id_header: None | str | Unset = UNSET,

) -> Response[ErrorBody | StreamEventsResponse200]:
    """ Live project events (Server-Sent Events)

     A `text/event-stream` of the project events the caller may see (owners their projects,
    admins all), for browsers' `EventSource`.

    **Authentication**: `Authorization: Bearer <accessToken>`, or — since `EventSource` cannot
    set headers — `?ticket=` from `POST /api/v1/events/tickets` (single use, 30 s).

    **Messages**: each event is `id: <event id>`, `event: <type>` (`project.created`,
    `project.updated`, `project.deleted`) and `data: {"id", "type", "data": Project,
    "timestamp"}`. After the missed events comes `event: ready`. `event: resync` means the
    events after your last id are gone (older than the retention window): reload your state.
    `: keep-alive` comments arrive every 20 s. The stream ends when the access token expires,
    when the client falls too far behind, and on server shutdown: reconnect and resume.

    **Resume**: `Last-Event-ID` header (sent by `EventSource` on reconnection) or
    `?lastEventId=`: every event after it, in order, once, then live.

    **WebSocket**: `GET /api/v1/ws` offers the same stream; first message
    `{"type": "auth", "accessToken": "…", "lastEventId": "…"?, "projectIds": [...]?}` within 5 s
    (else close 4401), then the missed events, `{"type": "ready"}`, and live events. The server
    sends `{"type": "ping"}` heartbeats; re-send `auth` with a fresh token before the old one
    expires (else close 4401). Close 4408: you fell behind, reconnect with `lastEventId`.
    See docs/realtime.md.

    Args:
        ticket (None | str | Unset): Single-use ticket instead of a header
        project_id (list[UUID] | None | Unset): Only these
        last_event_id_query (None | str | Unset): Resume after this
        last_event_id_header (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | StreamEventsResponse200]
     """


    kwargs = _get_kwargs(
        ticket=ticket,
project_id=project_id,
last_event_id_query=last_event_id_query,
last_event_id_header=last_event_id_header,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    *,
    client: AuthenticatedClient,
    ticket: None | str | Unset = UNSET,
    project_id: list[UUID] | None | Unset = UNSET,
    last_event_id_query: None | str | Unset = UNSET,
    last_event_id_header: None | str | Unset = UNSET,

) -> ErrorBody | StreamEventsResponse200 | None:
    """ Live project events (Server-Sent Events)

     A `text/event-stream` of the project events the caller may see (owners their projects,
    admins all), for browsers' `EventSource`.

    **Authentication**: `Authorization: Bearer <accessToken>`, or — since `EventSource` cannot
    set headers — `?ticket=` from `POST /api/v1/events/tickets` (single use, 30 s).

    **Messages**: each event is `id: <event id>`, `event: <type>` (`project.created`,
    `project.updated`, `project.deleted`) and `data: {"id", "type", "data": Project,
    "timestamp"}`. After the missed events comes `event: ready`. `event: resync` means the
    events after your last id are gone (older than the retention window): reload your state.
    `: keep-alive` comments arrive every 20 s. The stream ends when the access token expires,
    when the client falls too far behind, and on server shutdown: reconnect and resume.

    **Resume**: `Last-Event-ID` header (sent by `EventSource` on reconnection) or
    `?lastEventId=`: every event after it, in order, once, then live.

    **WebSocket**: `GET /api/v1/ws` offers the same stream; first message
    `{"type": "auth", "accessToken": "…", "lastEventId": "…"?, "projectIds": [...]?}` within 5 s
    (else close 4401), then the missed events, `{"type": "ready"}`, and live events. The server
    sends `{"type": "ping"}` heartbeats; re-send `auth` with a fresh token before the old one
    expires (else close 4401). Close 4408: you fell behind, reconnect with `lastEventId`.
    See docs/realtime.md.

    Args:
        ticket (None | str | Unset): Single-use ticket instead of a header
        project_id (list[UUID] | None | Unset): Only these
        last_event_id_query (None | str | Unset): Resume after this
        last_event_id_header (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | StreamEventsResponse200
     """


    return sync_detailed(
        client=client,
ticket=ticket,
project_id=project_id,
last_event_id_query=last_event_id_query,
last_event_id_header=last_event_id_header,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    ticket: None | str | Unset = UNSET,
    project_id: list[UUID] | None | Unset = UNSET,
    last_event_id_query: None | str | Unset = UNSET,
    last_event_id_header: None | str | Unset = UNSET,

) -> Response[ErrorBody | StreamEventsResponse200]:
    """ Live project events (Server-Sent Events)

     A `text/event-stream` of the project events the caller may see (owners their projects,
    admins all), for browsers' `EventSource`.

    **Authentication**: `Authorization: Bearer <accessToken>`, or — since `EventSource` cannot
    set headers — `?ticket=` from `POST /api/v1/events/tickets` (single use, 30 s).

    **Messages**: each event is `id: <event id>`, `event: <type>` (`project.created`,
    `project.updated`, `project.deleted`) and `data: {"id", "type", "data": Project,
    "timestamp"}`. After the missed events comes `event: ready`. `event: resync` means the
    events after your last id are gone (older than the retention window): reload your state.
    `: keep-alive` comments arrive every 20 s. The stream ends when the access token expires,
    when the client falls too far behind, and on server shutdown: reconnect and resume.

    **Resume**: `Last-Event-ID` header (sent by `EventSource` on reconnection) or
    `?lastEventId=`: every event after it, in order, once, then live.

    **WebSocket**: `GET /api/v1/ws` offers the same stream; first message
    `{"type": "auth", "accessToken": "…", "lastEventId": "…"?, "projectIds": [...]?}` within 5 s
    (else close 4401), then the missed events, `{"type": "ready"}`, and live events. The server
    sends `{"type": "ping"}` heartbeats; re-send `auth` with a fresh token before the old one
    expires (else close 4401). Close 4408: you fell behind, reconnect with `lastEventId`.
    See docs/realtime.md.

    Args:
        ticket (None | str | Unset): Single-use ticket instead of a header
        project_id (list[UUID] | None | Unset): Only these
        last_event_id_query (None | str | Unset): Resume after this
        last_event_id_header (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | StreamEventsResponse200]
     """


    kwargs = _get_kwargs(
        ticket=ticket,
project_id=project_id,
last_event_id_query=last_event_id_query,
last_event_id_header=last_event_id_header,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    *,
    client: AuthenticatedClient,
    ticket: None | str | Unset = UNSET,
    project_id: list[UUID] | None | Unset = UNSET,
    last_event_id_query: None | str | Unset = UNSET,
    last_event_id_header: None | str | Unset = UNSET,

) -> ErrorBody | StreamEventsResponse200 | None:
    """ Live project events (Server-Sent Events)

     A `text/event-stream` of the project events the caller may see (owners their projects,
    admins all), for browsers' `EventSource`.

    **Authentication**: `Authorization: Bearer <accessToken>`, or — since `EventSource` cannot
    set headers — `?ticket=` from `POST /api/v1/events/tickets` (single use, 30 s).

    **Messages**: each event is `id: <event id>`, `event: <type>` (`project.created`,
    `project.updated`, `project.deleted`) and `data: {"id", "type", "data": Project,
    "timestamp"}`. After the missed events comes `event: ready`. `event: resync` means the
    events after your last id are gone (older than the retention window): reload your state.
    `: keep-alive` comments arrive every 20 s. The stream ends when the access token expires,
    when the client falls too far behind, and on server shutdown: reconnect and resume.

    **Resume**: `Last-Event-ID` header (sent by `EventSource` on reconnection) or
    `?lastEventId=`: every event after it, in order, once, then live.

    **WebSocket**: `GET /api/v1/ws` offers the same stream; first message
    `{"type": "auth", "accessToken": "…", "lastEventId": "…"?, "projectIds": [...]?}` within 5 s
    (else close 4401), then the missed events, `{"type": "ready"}`, and live events. The server
    sends `{"type": "ping"}` heartbeats; re-send `auth` with a fresh token before the old one
    expires (else close 4401). Close 4408: you fell behind, reconnect with `lastEventId`.
    See docs/realtime.md.

    Args:
        ticket (None | str | Unset): Single-use ticket instead of a header
        project_id (list[UUID] | None | Unset): Only these
        last_event_id_query (None | str | Unset): Resume after this
        last_event_id_header (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | StreamEventsResponse200
     """


    return (await asyncio_detailed(
        client=client,
ticket=ticket,
project_id=project_id,
last_event_id_query=last_event_id_query,
last_event_id_header=last_event_id_header,

    )).parsed
