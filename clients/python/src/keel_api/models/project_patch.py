from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.project_patch_status_type_0 import ProjectPatchStatusType0
from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="ProjectPatch")



@_attrs_define
class ProjectPatch:
    """ PATCH: only the fields given change; `description: null` clears it.

        Attributes:
            name (None | str | Unset): As for create; not null
            description (None | str | Unset):
            status (None | ProjectPatchStatusType0 | Unset):
     """

    name: None | str | Unset = UNSET
    description: None | str | Unset = UNSET
    status: None | ProjectPatchStatusType0 | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        status: None | str | Unset
        if isinstance(self.status, Unset):
            status = UNSET
        elif isinstance(self.status, ProjectPatchStatusType0):
            status = self.status.value
        else:
            status = self.status


        field_dict: dict[str, Any] = {}

        field_dict.update({
        })
        if name is not UNSET:
            field_dict["name"] = name
        if description is not UNSET:
            field_dict["description"] = description
        if status is not UNSET:
            field_dict["status"] = status

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))


        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))


        def _parse_status(data: object) -> None | ProjectPatchStatusType0 | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                status_type_0 = ProjectPatchStatusType0(data)



                return status_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | ProjectPatchStatusType0 | Unset, data)

        status = _parse_status(d.pop("status", UNSET))


        project_patch = cls(
            name=name,
            description=description,
            status=status,
        )

        return project_patch

