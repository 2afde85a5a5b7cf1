from enum import StrEnum

class EndpointCreateEventsItem(StrEnum):
    PROJECT_CREATED = "project.created"
    PROJECT_DELETED = "project.deleted"
    PROJECT_UPDATED = "project.updated"

    def __str__(self) -> str:
        return str(self.value)
