"""The write store (PostgreSQL): tables, the engine and the unit of work (audit + outbox +
idempotency). Commands, security and the projector import it; it imports none of them."""
