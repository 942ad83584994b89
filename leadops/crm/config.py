"""config/crm.yaml: the HubSpot write-back, off unless `writeback.enabled` is true.

The token is never in this file: LEADOPS_HUBSPOT_TOKEN (or the Prefect Secret block the
intake uses) and LEADOPS_HUBSPOT_BASE_URL, as for intake.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from leadops.core.configfile import load_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WritebackConfig(_Strict):
    enabled: bool = Field(default=False, description="write leadops_* properties to contacts")
    batch_size: int = Field(default=100, ge=1, le=100, description="inputs per batch/update")
    max_batches: int = Field(default=1_000, ge=1, description="batches per pass at most")


class DealsConfig(_Strict):
    enabled: bool = Field(default=False, description="a deal for each active escalation")
    pipeline: str = "default"
    stage: str = Field(default="appointmentscheduled", description="the new deal's stage id")
    key_prefix: str = Field(
        default="leadops",
        pattern=r"^[a-z0-9][a-z0-9-]{0,30}$",
        description="leadops_key = <prefix>-esc-<escalation id>; unique per HubSpot account",
    )
    task: bool = Field(default=True, description="and a task for the rep's HubSpot owner")
    task_due_hours: float = Field(default=4.0, gt=0)


class CrmConfig(_Strict):
    writeback: WritebackConfig = Field(default_factory=WritebackConfig)
    deals: DealsConfig = Field(default_factory=DealsConfig)
    requests_per_second: float = Field(default=4.0, gt=0)
    max_attempts: int = Field(default=4, ge=1, description="tries per request in one pass")
    timeout_seconds: float = Field(default=30.0, gt=0)
    retry_minutes: float = Field(
        default=5.0, gt=0, description="first wait after a failed batch; doubles, up to 6 h"
    )

    @property
    def enabled(self) -> bool:
        return self.writeback.enabled or self.deals.enabled


def load_crm_config(config_dir: Path) -> CrmConfig:
    """config/crm.yaml, or everything off when the file does not exist."""
    path = config_dir / "crm.yaml"
    if not path.exists():
        return CrmConfig()
    return load_model(path, CrmConfig)
