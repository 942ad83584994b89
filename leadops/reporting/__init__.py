"""Reporting: KPIs (`kpis` and the modules it assembles), attribution of events to
campaign steps, the stuck-work detector, the daily report and its HTML page, run
summaries and the run table. Read-only: nothing here changes the database."""
