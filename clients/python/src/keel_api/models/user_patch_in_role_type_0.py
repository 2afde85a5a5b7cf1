from enum import StrEnum

class UserPatchInRoleType0(StrEnum):
    ADMIN = "admin"
    USER = "user"

    def __str__(self) -> str:
        return str(self.value)
