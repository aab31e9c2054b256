"""What the admin page changes on an account besides what `pbx-textback user` does (store/web.py):
role, extension, enabling again. A change of role signs the user out everywhere, so a page
opened as admin stops working at once."""
from __future__ import annotations

from .db import Store
from .web import ROLES, WebSession, WebUser


def _get(name: str) -> WebUser:
    u = WebUser.get_or_none(WebUser.name == name)
    if u is None:
        raise ValueError(f"no user {name}")
    return u


def active_admins(store: Store) -> list[str]:
    return [u.name for u in WebUser.select(WebUser.name).where(
        (WebUser.role == "admin") & (WebUser.disabled == False))]  # noqa: E712


def set_role(store: Store, name: str, role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    with store.write():
        u = _get(name)
        if u.role == role:
            return
        if u.role == "admin" and active_admins(store) == [name]:
            raise ValueError(f"{name} is the only admin: make someone else admin first")
        WebUser.update(role=role).where(WebUser.id == u.id).execute()
        WebSession.delete().where(WebSession.user == u.id).execute()


def set_extension(store: Store, name: str, extension: str) -> None:
    with store.write():
        WebUser.update(extension=extension).where(WebUser.id == _get(name).id).execute()


def set_disabled(store: Store, name: str, disabled: bool) -> None:
    with store.write():
        u = _get(name)
        if disabled and u.role == "admin" and active_admins(store) == [name]:
            raise ValueError(f"{name} is the only admin: make someone else admin first")
        WebUser.update(disabled=disabled).where(WebUser.id == u.id).execute()
        if disabled:
            WebSession.delete().where(WebSession.user == u.id).execute()
