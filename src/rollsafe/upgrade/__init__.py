"""The upgrade toolkit: what operators and reviewers run around a rolling
upgrade (online data migrations, upgrade checks, the contract gate, the
compatibility lint). Importing it loads no database or messaging library.
"""

from rollsafe.upgrade.checks import (
    CheckContext,
    CheckReport,
    CheckResult,
    CheckStatus,
    UpgradeCheck,
    run_checks,
    upgrade_check,
)
from rollsafe.upgrade.compat import Finding, check_compat
from rollsafe.upgrade.definition import ServiceDefinition
from rollsafe.upgrade.gate import ContractBlocker, check_contract, contract_blockers
from rollsafe.upgrade.migrations import (
    Batch,
    Migration,
    MigrationReport,
    MigrationResult,
    OnlineMigrations,
    Progress,
)
from rollsafe.upgrade.snapshot import (
    Snapshot,
    read_snapshot,
    read_snapshots,
    take_snapshot,
    write_snapshot,
)
from rollsafe.upgrade.status import FleetStatus, fleet_status, status_tables

__all__ = [
    "Batch",
    "CheckContext",
    "CheckReport",
    "CheckResult",
    "CheckStatus",
    "ContractBlocker",
    "Finding",
    "FleetStatus",
    "Migration",
    "MigrationReport",
    "MigrationResult",
    "OnlineMigrations",
    "Progress",
    "ServiceDefinition",
    "Snapshot",
    "UpgradeCheck",
    "check_compat",
    "check_contract",
    "contract_blockers",
    "fleet_status",
    "read_snapshot",
    "read_snapshots",
    "run_checks",
    "status_tables",
    "take_snapshot",
    "upgrade_check",
    "write_snapshot",
]
