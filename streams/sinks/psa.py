"""PSA project provisioning. Rows carry ``created_by = 'integration'``; their ids are derived from
the engagement so a replay or a second worker creates nothing twice. When capture brings the
project back, the mirror finds it and the engagement asks for no further provisioning (no loop)."""
from __future__ import annotations

import hashlib

import psycopg

from streams.rules.engagement import ProjectProvision

INTEGRATION = "integration"
ID_BASE = 9_000_000_000_000_000  # far above the PSA's own ids


def provisioned_id(*parts: str) -> int:
    digest = int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:13], 16)
    return ID_BASE + digest % 10**15


def write(conn: psycopg.Connection, provisions: list[ProjectProvision]) -> None:
    if not provisions:
        return
    with conn.transaction(), conn.cursor() as cur:
        for p in provisions:
            project_id = provisioned_id("project", p.crm_quote_number)
            cur.execute(
                "INSERT INTO psa.project (id, project_code, name, crm_quote_number, account_number, status,"
                " commercial_model, start_date, end_date, created_by)"
                " VALUES (%s, %s, %s, %s, %s, 'active', %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (project_id, p.project_code, p.name, p.crm_quote_number, p.account_number, p.commercial_model,
                 p.start_date, p.end_date, INTEGRATION),
            )
            cur.executemany(
                "INSERT INTO psa.milestone (id, project_id, milestone_code, name, due_date, status)"
                " SELECT %s, %s, %s, %s, %s, 'planned' WHERE EXISTS (SELECT 1 FROM psa.project WHERE id = %s)"
                " ON CONFLICT DO NOTHING",
                [(provisioned_id("milestone", p.crm_quote_number, code), project_id, code, name, due, project_id)
                 for code, name, due in p.milestones],
            )
