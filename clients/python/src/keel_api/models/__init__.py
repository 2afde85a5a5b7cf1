""" Contains all the data models used in inputs/outputs """

from .account_delete_in import AccountDeleteIn
from .admin_user_out import AdminUserOut
from .admin_user_out_role import AdminUserOutRole
from .attempt_out import AttemptOut
from .audit_entry_out import AuditEntryOut
from .audit_entry_out_details import AuditEntryOutDetails
from .audit_page import AuditPage
from .auth_out import AuthOut
from .delivery_list import DeliveryList
from .delivery_out import DeliveryOut
from .delivery_out_status import DeliveryOutStatus
from .email_change_in import EmailChangeIn
from .endpoint_create import EndpointCreate
from .endpoint_create_events_item import EndpointCreateEventsItem
from .endpoint_list import EndpointList
from .endpoint_out import EndpointOut
from .endpoint_patch import EndpointPatch
from .endpoint_patch_events_type_0_item import EndpointPatchEventsType0Item
from .endpoint_with_secret import EndpointWithSecret
from .error_body import ErrorBody
from .error_detail import ErrorDetail
from .export_out import ExportOut
from .export_out_audit_log_item import ExportOutAuditLogItem
from .export_out_projects_item import ExportOutProjectsItem
from .forgot_password_in import ForgotPasswordIn
from .health import Health
from .jwks import Jwks
from .jwks_keys_item import JwksKeysItem
from .linked_identity_out import LinkedIdentityOut
from .list_projects_sort import ListProjectsSort
from .list_projects_status_type_0 import ListProjectsStatusType0
from .login_in import LoginIn
from .logout_in import LogoutIn
from .mfa_code_in import MfaCodeIn
from .mfa_disable_in import MfaDisableIn
from .mfa_setup_out import MfaSetupOut
from .oidc_exchange_in import OidcExchangeIn
from .pagination import Pagination
from .password_change_in import PasswordChangeIn
from .project_create import ProjectCreate
from .project_create_status import ProjectCreateStatus
from .project_out import ProjectOut
from .project_out_status import ProjectOutStatus
from .project_page import ProjectPage
from .project_patch import ProjectPatch
from .project_patch_status_type_0 import ProjectPatchStatusType0
from .project_replace import ProjectReplace
from .project_replace_status import ProjectReplaceStatus
from .readiness import Readiness
from .readiness_checks import ReadinessChecks
from .refresh_in import RefreshIn
from .register_in import RegisterIn
from .reset_password_in import ResetPasswordIn
from .session_list import SessionList
from .session_out import SessionOut
from .stream_events_response_200 import StreamEventsResponse200
from .ticket_out import TicketOut
from .token_pair import TokenPair
from .user_out import UserOut
from .user_out_role import UserOutRole
from .user_page import UserPage
from .user_patch_in import UserPatchIn
from .user_patch_in_role_type_0 import UserPatchInRoleType0
from .verify_email_in import VerifyEmailIn

__all__ = (
    "AccountDeleteIn",
    "AdminUserOut",
    "AdminUserOutRole",
    "AttemptOut",
    "AuditEntryOut",
    "AuditEntryOutDetails",
    "AuditPage",
    "AuthOut",
    "DeliveryList",
    "DeliveryOut",
    "DeliveryOutStatus",
    "EmailChangeIn",
    "EndpointCreate",
    "EndpointCreateEventsItem",
    "EndpointList",
    "EndpointOut",
    "EndpointPatch",
    "EndpointPatchEventsType0Item",
    "EndpointWithSecret",
    "ErrorBody",
    "ErrorDetail",
    "ExportOut",
    "ExportOutAuditLogItem",
    "ExportOutProjectsItem",
    "ForgotPasswordIn",
    "Health",
    "Jwks",
    "JwksKeysItem",
    "LinkedIdentityOut",
    "ListProjectsSort",
    "ListProjectsStatusType0",
    "LoginIn",
    "LogoutIn",
    "MfaCodeIn",
    "MfaDisableIn",
    "MfaSetupOut",
    "OidcExchangeIn",
    "Pagination",
    "PasswordChangeIn",
    "ProjectCreate",
    "ProjectCreateStatus",
    "ProjectOut",
    "ProjectOutStatus",
    "ProjectPage",
    "ProjectPatch",
    "ProjectPatchStatusType0",
    "ProjectReplace",
    "ProjectReplaceStatus",
    "Readiness",
    "ReadinessChecks",
    "RefreshIn",
    "RegisterIn",
    "ResetPasswordIn",
    "SessionList",
    "SessionOut",
    "StreamEventsResponse200",
    "TicketOut",
    "TokenPair",
    "UserOut",
    "UserOutRole",
    "UserPage",
    "UserPatchIn",
    "UserPatchInRoleType0",
    "VerifyEmailIn",
)
