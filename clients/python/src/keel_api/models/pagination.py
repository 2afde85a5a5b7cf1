from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="Pagination")



@_attrs_define
class Pagination:
    """ The one pagination block of every list response (projects, users, audit).

        Attributes:
            page (int | None): Page number; null on a cursor page
            limit (int):
            total (int | None): Items matching the filters; null on a cursor page
            total_pages (int | None): null on a cursor page
            next_cursor (None | str | Unset): Opaque; pass as `cursor` for the next page. null on the last page and on lists
                without cursor pagination
     """

    page: int | None
    limit: int
    total: int | None
    total_pages: int | None
    next_cursor: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        page: int | None
        page = self.page

        limit = self.limit

        total: int | None
        total = self.total

        total_pages: int | None
        total_pages = self.total_pages

        next_cursor: None | str | Unset
        if isinstance(self.next_cursor, Unset):
            next_cursor = UNSET
        else:
            next_cursor = self.next_cursor


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "page": page,
            "limit": limit,
            "total": total,
            "totalPages": total_pages,
        })
        if next_cursor is not UNSET:
            field_dict["nextCursor"] = next_cursor

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        def _parse_page(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        page = _parse_page(d.pop("page"))


        limit = d.pop("limit")

        def _parse_total(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        total = _parse_total(d.pop("total"))


        def _parse_total_pages(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        total_pages = _parse_total_pages(d.pop("totalPages"))


        def _parse_next_cursor(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        next_cursor = _parse_next_cursor(d.pop("nextCursor", UNSET))


        pagination = cls(
            page=page,
            limit=limit,
            total=total,
            total_pages=total_pages,
            next_cursor=next_cursor,
        )


        pagination.additional_properties = d
        return pagination

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
