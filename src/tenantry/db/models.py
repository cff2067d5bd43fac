"""Imports every domain's models so `metadata` describes the whole schema (for Alembic's compare)."""

from tenantry.catalog.models import Product
from tenantry.db.base import Base
from tenantry.workspaces.models import Membership, PersonalAccessToken, User, Workspace

metadata = Base.metadata

__all__ = ["Membership", "PersonalAccessToken", "Product", "User", "Workspace", "metadata"]
