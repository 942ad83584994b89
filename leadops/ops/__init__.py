"""Operations: `leadops doctor` (its checks in `doctor`, `doctor_prefect` and `check`), the
local Prefect stack (`prefect_stack`) and retrying dead letters (`retry`)."""
