from enum import StrEnum

class ListProjectsSort(StrEnum):
    CREATEDAT = "createdAt"
    NAME = "name"
    UPDATEDAT = "updatedAt"
    VALUE_1 = "-createdAt"
    VALUE_3 = "-name"
    VALUE_5 = "-updatedAt"

    def __str__(self) -> str:
        return str(self.value)
