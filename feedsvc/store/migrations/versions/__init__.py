"""The schema's revisions, oldest first: each file is one step, never edited once released."""
