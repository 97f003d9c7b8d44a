"""People's review: their decisions (`reviews`), the review page (`review`), the workbench
that serves it and its API (`serve`), approvals from scripts (`approvals`) and a person's edit
checked as a model's answer is (`edits`)."""
