"""deployments (image, service) and deployment_requests (image, service): which services
named an image, the join of the security routes' tenant scope (an image belongs to the
tenants of the services that deployed it or asked for it; `warehouse.read.scope`).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 11:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deployments_image_service", "deployments", ["image", "service"])
    op.create_index(
        "ix_deployment_requests_image_service", "deployment_requests", ["image", "service"]
    )


def downgrade() -> None:
    op.drop_index("ix_deployment_requests_image_service", table_name="deployment_requests")
    op.drop_index("ix_deployments_image_service", table_name="deployments")
