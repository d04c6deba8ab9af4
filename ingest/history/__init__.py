"""History import: an existing mailbox's mail, brought in as closed cases in written order."""
