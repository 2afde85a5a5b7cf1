from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.user_patch_in_role_type_0 import UserPatchInRoleType0
from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="UserPatchIn")



@_attrs_define
class UserPatchIn:
    """ 
        Attributes:
            role (None | Unset | UserPatchInRoleType0):
            is_active (bool | None | Unset):
     """

    role: None | Unset | UserPatchInRoleType0 = UNSET
    is_active: bool | None | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        role: None | str | Unset
        if isinstance(self.role, Unset):
            role = UNSET
        elif isinstance(self.role, UserPatchInRoleType0):
            role = self.role.value
        else:
            role = self.role

        is_active: bool | None | Unset
        if isinstance(self.is_active, Unset):
            is_active = UNSET
        else:
            is_active = self.is_active


        field_dict: dict[str, Any] = {}

        field_dict.update({
        })
        if role is not UNSET:
            field_dict["role"] = role
        if is_active is not UNSET:
            field_dict["isActive"] = is_active

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        def _parse_role(data: object) -> None | Unset | UserPatchInRoleType0:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                role_type_0 = UserPatchInRoleType0(data)



                return role_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Unset | UserPatchInRoleType0, data)

        role = _parse_role(d.pop("role", UNSET))


        def _parse_is_active(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        is_active = _parse_is_active(d.pop("isActive", UNSET))


        user_patch_in = cls(
            role=role,
            is_active=is_active,
        )

        return user_patch_in

