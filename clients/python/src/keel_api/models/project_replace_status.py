from enum import StrEnum

class ProjectReplaceStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"
    COMPLETED = "completed"

    def __str__(self) -> str:
        return str(self.value)
