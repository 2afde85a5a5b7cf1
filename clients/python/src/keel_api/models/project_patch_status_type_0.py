from enum import StrEnum

class ProjectPatchStatusType0(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"
    COMPLETED = "completed"

    def __str__(self) -> str:
        return str(self.value)
