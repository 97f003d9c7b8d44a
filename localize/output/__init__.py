"""The output folder: OUT's state and files (`store`, with `lock`, `records` and `layout`), the
audit log's records (`audit`), the cost report and what a run measured (`run_report`,
`reports`), sharded runs combined (`merge`), and results delivered as webhooks (`deliver`)."""
