"""Mail: the outbox of email jobs (written in a command's transaction), the sender that
delivers them over SMTP, and the development sink that stores what it receives."""
