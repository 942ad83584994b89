"""Operations: the doctor's checks, the local Prefect stack and retrying dead letters."""
