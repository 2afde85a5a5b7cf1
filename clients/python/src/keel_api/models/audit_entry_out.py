from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast
from uuid import UUID
import datetime

if TYPE_CHECKING:
  from ..models.audit_entry_out_details import AuditEntryOutDetails





T = TypeVar("T", bound="AuditEntryOut")



@_attrs_define
class AuditEntryOut:
    """ 
        Attributes:
            id (int):
            at (datetime.datetime):
            actor_id (None | UUID):
            action (str):
            target_type (None | str):
            target_id (None | str):
            ip (None | str):
            request_id (None | str):
            outcome (str):
            details (AuditEntryOutDetails):
     """

    id: int
    at: datetime.datetime
    actor_id: None | UUID
    action: str
    target_type: None | str
    target_id: None | str
    ip: None | str
    request_id: None | str
    outcome: str
    details: AuditEntryOutDetails
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.audit_entry_out_details import AuditEntryOutDetails # noqa: PLC0415
        id = self.id

        at = self.at.isoformat()

        actor_id: None | str
        if isinstance(self.actor_id, UUID):
            actor_id = str(self.actor_id)
        else:
            actor_id = self.actor_id

        action = self.action

        target_type: None | str
        target_type = self.target_type

        target_id: None | str
        target_id = self.target_id

        ip: None | str
        ip = self.ip

        request_id: None | str
        request_id = self.request_id

        outcome = self.outcome

        details = self.details.to_dict()


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "id": id,
            "at": at,
            "actorId": actor_id,
            "action": action,
            "targetType": target_type,
            "targetId": target_id,
            "ip": ip,
            "requestId": request_id,
            "outcome": outcome,
            "details": details,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.audit_entry_out_details import AuditEntryOutDetails # noqa: PLC0415
        d = dict(src_dict)
        id = d.pop("id")

        at = datetime.datetime.fromisoformat(d.pop("at"))




        def _parse_actor_id(data: object) -> None | UUID:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                actor_id_type_0 = UUID(data)



                return actor_id_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | UUID, data)

        actor_id = _parse_actor_id(d.pop("actorId"))


        action = d.pop("action")

        def _parse_target_type(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        target_type = _parse_target_type(d.pop("targetType"))


        def _parse_target_id(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        target_id = _parse_target_id(d.pop("targetId"))


        def _parse_ip(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        ip = _parse_ip(d.pop("ip"))


        def _parse_request_id(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        request_id = _parse_request_id(d.pop("requestId"))


        outcome = d.pop("outcome")

        details = AuditEntryOutDetails.from_dict(d.pop("details"))




        audit_entry_out = cls(
            id=id,
            at=at,
            actor_id=actor_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            ip=ip,
            request_id=request_id,
            outcome=outcome,
            details=details,
        )


        audit_entry_out.additional_properties = d
        return audit_entry_out

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
