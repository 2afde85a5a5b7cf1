from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="OidcExchangeIn")



@_attrs_define
class OidcExchangeIn:
    """ 
        Attributes:
            code (str): The one-time `code` the OpenID callback added to the redirectUri
            totp (None | str | Unset): Required when MFA is enabled
     """

    code: str
    totp: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        code = self.code

        totp: None | str | Unset
        if isinstance(self.totp, Unset):
            totp = UNSET
        else:
            totp = self.totp


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "code": code,
        })
        if totp is not UNSET:
            field_dict["totp"] = totp

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        code = d.pop("code")

        def _parse_totp(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        totp = _parse_totp(d.pop("totp", UNSET))


        oidc_exchange_in = cls(
            code=code,
            totp=totp,
        )

        return oidc_exchange_in

