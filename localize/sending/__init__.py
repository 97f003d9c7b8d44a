"""Sending: a live run driven (`pipeline`), its jobs carried from plan to result (`runner`:
requests, re-asks, billing, the audit log), the relay client and its rate control (`relay`,
`ratelimit`), the batch API (`batch`), and the group commit of sent attempts (`group_commit`)."""
