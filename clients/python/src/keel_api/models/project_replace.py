from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.project_replace_status import ProjectReplaceStatus
from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="ProjectReplace")



@_attrs_define
class ProjectReplace:
    """ PUT: the whole project; omitted optional fields take their defaults.

        Attributes:
            name (str): Trimmed, then 3–100 letters, digits, spaces and hyphens
            description (None | str | Unset): At most 1000 characters
            status (ProjectReplaceStatus | Unset):  Default: ProjectReplaceStatus.ACTIVE.
     """

    name: str
    description: None | str | Unset = UNSET
    status: ProjectReplaceStatus | Unset = ProjectReplaceStatus.ACTIVE





    def to_dict(self) -> dict[str, Any]:
        name = self.name

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        status: str | Unset = UNSET
        if not isinstance(self.status, Unset):
            status = self.status.value



        field_dict: dict[str, Any] = {}

        field_dict.update({
            "name": name,
        })
        if description is not UNSET:
            field_dict["description"] = description
        if status is not UNSET:
            field_dict["status"] = status

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))


        _status = d.pop("status", UNSET)
        status: ProjectReplaceStatus | Unset
        if isinstance(_status,  Unset):
            status = UNSET
        else:
            status = ProjectReplaceStatus(_status)




        project_replace = cls(
            name=name,
            description=description,
            status=status,
        )

        return project_replace

