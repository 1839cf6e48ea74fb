"""The default permission: any authenticated user may read, only staff may change anything."""

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView


class ReadAuthenticatedWriteStaff(BasePermission):
    message = "Changing backends or policies needs a staff user."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or bool(user.is_staff)
