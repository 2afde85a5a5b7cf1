from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.user_out_role import UserOutRole
from typing import cast
from uuid import UUID
import datetime






T = TypeVar("T", bound="UserOut")



@_attrs_define
class UserOut:
    """ 
        Attributes:
            id (UUID):
            email (str):
            name (str):
            role (UserOutRole):
            email_verified (bool): Whether the user has proved they receive mail at `email` (SPEC §11).
            created_at (datetime.datetime):
     """

    id: UUID
    email: str
    name: str
    role: UserOutRole
    email_verified: bool
    created_at: datetime.datetime
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        id = str(self.id)

        email = self.email

        name = self.name

        role = self.role.value

        email_verified = self.email_verified

        created_at = self.created_at.isoformat()


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "id": id,
            "email": email,
            "name": name,
            "role": role,
            "emailVerified": email_verified,
            "createdAt": created_at,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = UUID(d.pop("id"))




        email = d.pop("email")

        name = d.pop("name")

        role = UserOutRole(d.pop("role"))




        email_verified = d.pop("emailVerified")

        created_at = datetime.datetime.fromisoformat(d.pop("createdAt"))




        user_out = cls(
            id=id,
            email=email,
            name=name,
            role=role,
            email_verified=email_verified,
            created_at=created_at,
        )


        user_out.additional_properties = d
        return user_out

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
