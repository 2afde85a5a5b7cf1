from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast
import datetime

if TYPE_CHECKING:
  from ..models.admin_user_out import AdminUserOut
  from ..models.export_out_audit_log_item import ExportOutAuditLogItem
  from ..models.export_out_projects_item import ExportOutProjectsItem
  from ..models.linked_identity_out import LinkedIdentityOut
  from ..models.session_out import SessionOut





T = TypeVar("T", bound="ExportOut")



@_attrs_define
class ExportOut:
    """ Everything Keel holds about the caller (GDPR Art. 20), as plain JSON.

        Attributes:
            exported_at (datetime.datetime):
            user (AdminUserOut):
            sessions (list[SessionOut]):
            linked_identities (list[LinkedIdentityOut]):
            projects (list[ExportOutProjectsItem]):
            audit_log (list[ExportOutAuditLogItem]):
     """

    exported_at: datetime.datetime
    user: AdminUserOut
    sessions: list[SessionOut]
    linked_identities: list[LinkedIdentityOut]
    projects: list[ExportOutProjectsItem]
    audit_log: list[ExportOutAuditLogItem]
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.admin_user_out import AdminUserOut # noqa: PLC0415
        from ..models.export_out_audit_log_item import ExportOutAuditLogItem # noqa: PLC0415
        from ..models.export_out_projects_item import ExportOutProjectsItem # noqa: PLC0415
        from ..models.linked_identity_out import LinkedIdentityOut # noqa: PLC0415
        from ..models.session_out import SessionOut # noqa: PLC0415
        exported_at = self.exported_at.isoformat()

        user = self.user.to_dict()

        sessions = []
        for sessions_item_data in self.sessions:
            sessions_item = sessions_item_data.to_dict()
            sessions.append(sessions_item)



        linked_identities = []
        for linked_identities_item_data in self.linked_identities:
            linked_identities_item = linked_identities_item_data.to_dict()
            linked_identities.append(linked_identities_item)



        projects = []
        for projects_item_data in self.projects:
            projects_item = projects_item_data.to_dict()
            projects.append(projects_item)



        audit_log = []
        for audit_log_item_data in self.audit_log:
            audit_log_item = audit_log_item_data.to_dict()
            audit_log.append(audit_log_item)




        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "exportedAt": exported_at,
            "user": user,
            "sessions": sessions,
            "linkedIdentities": linked_identities,
            "projects": projects,
            "auditLog": audit_log,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.admin_user_out import AdminUserOut # noqa: PLC0415
        from ..models.export_out_audit_log_item import ExportOutAuditLogItem # noqa: PLC0415
        from ..models.export_out_projects_item import ExportOutProjectsItem # noqa: PLC0415
        from ..models.linked_identity_out import LinkedIdentityOut # noqa: PLC0415
        from ..models.session_out import SessionOut # noqa: PLC0415
        d = dict(src_dict)
        exported_at = datetime.datetime.fromisoformat(d.pop("exportedAt"))




        user = AdminUserOut.from_dict(d.pop("user"))




        sessions = []
        _sessions = d.pop("sessions")
        for sessions_item_data in (_sessions):
            sessions_item = SessionOut.from_dict(sessions_item_data)



            sessions.append(sessions_item)


        linked_identities = []
        _linked_identities = d.pop("linkedIdentities")
        for linked_identities_item_data in (_linked_identities):
            linked_identities_item = LinkedIdentityOut.from_dict(linked_identities_item_data)



            linked_identities.append(linked_identities_item)


        projects = []
        _projects = d.pop("projects")
        for projects_item_data in (_projects):
            projects_item = ExportOutProjectsItem.from_dict(projects_item_data)



            projects.append(projects_item)


        audit_log = []
        _audit_log = d.pop("auditLog")
        for audit_log_item_data in (_audit_log):
            audit_log_item = ExportOutAuditLogItem.from_dict(audit_log_item_data)



            audit_log.append(audit_log_item)


        export_out = cls(
            exported_at=exported_at,
            user=user,
            sessions=sessions,
            linked_identities=linked_identities,
            projects=projects,
            audit_log=audit_log,
        )


        export_out.additional_properties = d
        return export_out

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
